"""Change points (pipeline.changes) and the chain around them: CONFIG rows shaped as the CONFIG
layout names its columns, config version steps per firewall, declared changes, the rules file
itself and the change documents."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from pathlib import Path

import jsonschema
import orjson
import pytest

from pipeline import changes
from pipeline.chain import Chain, ChainConfig, Message
from pipeline.errors import ConfigError
from pipeline.resources import SCHEMAS

DIAGNOSIS = Path(__file__).resolve().parents[1] / "golden" / "diagnosis"
WHEN = datetime(2026, 11, 20, 10, 15, 2, tzinfo=UTC)
SCHEMA = orjson.loads((SCHEMAS / "ecs" / "event.schema.json").read_bytes())


def config_record(**values) -> dict:
    """A CONFIG record as the CONFIG log's column layout names its values (Config Log Fields:
    Host, Virtual System, Command, Admin, Client, Result, Configuration Path)."""
    record = {
        "type": "CONFIG",
        "serial": "013201000007",
        "subtype": "0",
        "config_ver": "2562",
        "time_generated": WHEN,
        "receive_time": WHEN,
        "host": "192.0.2.44",
        "admin": "admin",
        "client": "Web",
        "seqno": 7286123782408765488,
        "device_name": "fw-core-02",
    }
    record.update(values)
    return record


# --- CONFIG --------------------------------------------------------------------------------


def test_a_commit_row_is_a_commit() -> None:
    # criblpacks pan_config.log: cmd commit, result Submitted, empty path
    change = changes.rules().match(config_record(cmd="commit", result="Submitted"), "id1")
    assert change is not None
    assert (change.kind, change.rule, change.firewall, change.time) == (
        "commit",
        "config-commit",
        "013201000007",
        WHEN,
    )
    assert change.summary == "Commit by admin (Web): Submitted"
    assert change.id == "id1:change"


@pytest.mark.parametrize(
    "path",
    [
        " vsys  vsys1 rulebase decryption rules  decrypt-inbound-portal",
        " shared certificate  portal-inbound-2027",
        " vsys  vsys1 profiles decryption  strict-inbound ssl-protocol-settings",
        " shared ssl-decrypt ssl-exclude-cert  payments.example.com",
    ],
)
def test_an_edit_of_decryption_or_certificates_is_a_change(path: str) -> None:
    change = changes.rules().match(config_record(cmd="edit", result="Succeeded", path=path), "x")
    assert change is not None
    assert change.kind == "decryption-config"
    assert change.summary == f"edit {' '.join(path.split())} by admin"


@pytest.mark.parametrize(
    ("cmd", "result", "path"),
    [
        # elastic/integrations test-panw-panos-config-sample.log rows: not decryption
        ("set", "Succeeded", " config shared log-settings iptag match-list  ip-tag"),
        ("move", "Succeeded", " vsys  vsys1 rulebase security rules  block-198.51.100.9"),
        ("override", "Failed", " deviceconfig system device-telemetry"),
        # a decryption edit that did not go through
        ("edit", "Failed", " vsys  vsys1 rulebase decryption rules  decrypt-inbound-portal"),
    ],
)
def test_other_config_rows_are_not_changes(cmd: str, result: str, path: str) -> None:
    assert changes.rules().match(config_record(cmd=cmd, result=result, path=path), "x") is None


# --- the config version column ---------------------------------------------------------------


def golden_line(name: str) -> str:
    text = (DIAGNOSIS / f"{name}.log").read_text()
    return next(line for line in text.splitlines() if line and not line.startswith("#"))


def with_version(line: str, version: str, serial: str = "012801096514", seqno: int = 1) -> str:
    head, sep, body = line.partition(" 1,")
    fields = body.split(",")
    fields[1] = serial  # body starts at Receive Time: column 1 of the record is index 0 here
    fields[4] = version
    # the Sequence Number: DECRYPTION column 89, TRAFFIC 39 (of the record, FUTURE_USE = 0)
    fields[88 if ",DECRYPTION," in line else 38] = str(7460000000000000000 + seqno)
    return head + sep + ",".join(fields)


def run(chain: Chain, lines: list[str], versions: dict) -> list:
    result = chain.run([Message(line) for line in lines], {}, 0.0, versions)
    assert not result.dead_letters
    versions.update(result.versions)
    return result.changes


def test_the_config_version_stepping_on_a_firewall_is_one_software_change() -> None:
    chain = Chain(ChainConfig(event_time=True))
    decryption, traffic = golden_line("none-successful-handshake"), golden_line("none-tcp-fin")
    versions: dict = {}
    before = [with_version(decryption, "2561", seqno=1), with_version(traffic, "2561", seqno=2)]
    assert run(chain, before, versions) == []  # first sighting: nothing to compare with
    after = [with_version(decryption, "2562", seqno=3), with_version(traffic, "2562", seqno=4)]
    [step] = run(chain, after, versions)
    assert (step.kind, step.rule, step.firewall) == ("software", "version-step", "012801096514")
    assert (step.version_from, step.version_to) == ("10.1", "10.2")
    assert step.summary == "PAN-OS 10.1 to 10.2 (config version 2561 to 2562)"
    # a later batch, another firewall's first sighting, an anonymised value: no change
    later = [
        with_version(decryption, "2562", seqno=5),
        with_version(decryption, "2562", serial="012801096599", seqno=6),
        with_version(decryption, "0", seqno=7),
        with_version(decryption, "2562", seqno=8),
    ]
    assert run(chain, later, versions) == []
    assert versions["012801096514"] == ("2562", "10.2")


def test_a_downgrade_is_a_change_too() -> None:
    chain = Chain(ChainConfig(event_time=True))
    line = golden_line("none-successful-handshake")
    versions: dict = {}
    lines = [with_version(line, "2816", seqno=1), with_version(line, "2562", seqno=2)]
    [step] = run(chain, lines, versions)
    assert (step.version_from, step.version_to) == ("11.0", "10.2")


def test_releases_of_config_versions() -> None:
    # versions.csv: (major << 8) | minor, as observed; JSON forwarding writes the release
    assert changes.release_of("2561") == "10.1"
    assert changes.release_of("2817") == "11.1"
    assert changes.release_of("10.1") == "10.1"
    assert changes.release_of("0") is None
    assert changes.release_of("2222") is None


def test_the_change_document_follows_the_record_that_shows_it() -> None:
    chain = Chain(ChainConfig(event_time=True))
    line = golden_line("none-successful-handshake")
    result = chain.run(
        [
            Message(with_version(line, "2561", seqno=1)),
            Message(with_version(line, "2562", seqno=2)),
        ],
        {},
        0.0,
        {},
    )
    kinds = [(d.record["config_ver"], d.change is not None) for d in result.documents]
    assert kinds == [("2561", False), ("2562", False), ("2562", True)]
    doc = orjson.loads(result.documents[-1].source)
    jsonschema.validate(doc, SCHEMA)
    assert doc["event"]["dataset"] == "decryptscope.change"
    assert doc["event"]["category"] == ["host"]
    assert doc["observer"]["serial_number"] == "012801096514"
    assert doc["decryptscope"]["change"]["to"] == "10.2"
    assert result.documents[-1].key == b"012801096514:"


def test_a_chain_without_changes_emits_none() -> None:
    chain = Chain(ChainConfig(event_time=True, changes=False))
    line = golden_line("none-successful-handshake")
    lines = [with_version(line, "2561", seqno=1), with_version(line, "2562", seqno=2)]
    result = chain.run([Message(x) for x in lines], {}, 0.0, {})
    assert result.changes == [] and result.versions == {}
    assert all(d.change is None for d in result.documents)


# --- declared changes ------------------------------------------------------------------------


def test_declared_changes_with_and_without_a_serial() -> None:
    one, every = changes.declared(["2026-03-01T02:00:00+01:00,013201000007", "2026-03-02T00:00"])
    assert (one.kind, one.firewall, one.declared) == ("declared", "013201000007", True)
    assert one.time == datetime(2026, 3, 1, 1, 0, tzinfo=UTC)
    assert every.firewall == "" and every.time == datetime(2026, 3, 2, tzinfo=UTC)
    # the same from a comma-separated setting (the environment splits at every comma)
    again = changes.declared(["2026-03-01T02:00:00+01:00", "013201000007", "2026-03-02T00:00"])
    assert again == [one, every]


@pytest.mark.parametrize("items", [["yesterday"], ["013201000007"], ["2026-03-01T00:00Z,a,b"]])
def test_bad_declared_changes_are_refused(items: list[str]) -> None:
    with pytest.raises(ConfigError):
        changes.declared(items)


# --- the rules file --------------------------------------------------------------------------


def rules_data() -> dict:
    import tomllib

    return tomllib.loads(changes.RULES_FILE.read_text())


@pytest.mark.parametrize(
    "spoil",
    [
        lambda d: d["system"][0].update(kind="nonsense"),
        lambda d: d["system"][0].update(pattern="(unclosed"),
        lambda d: d["system"][1].update(id=d["system"][0]["id"]),
        lambda d: d["system"][0].update(colour="blue"),
        lambda d: d["system"][0].update(alert="sometimes"),
        lambda d: d["kinds"].pop("declared"),
        lambda d: d["kinds"]["content"].update(category="web"),
    ],
)
def test_a_bad_rules_file_is_refused(spoil) -> None:
    data = copy.deepcopy(rules_data())
    spoil(data)
    with pytest.raises(ConfigError):
        changes.Rules(data)


def test_the_kinds_are_those_the_ecs_schema_allows() -> None:
    allowed = SCHEMA["properties"]["decryptscope"]["properties"]["change"]["properties"]["kind"]
    assert set(changes.kinds()) == set(allowed["enum"])


def test_only_system_and_config_records_are_matched() -> None:
    record = {
        "type": "TRAFFIC",
        "opaque": "Installed contents package: x.tgz",
        "time_generated": WHEN,
    }
    assert changes.rules().match(record) is None
    record["type"] = "SYSTEM"
    record["subtype"] = "general"
    assert changes.rules().match(record).kind == "content"


def test_a_record_without_a_time_shows_no_change() -> None:
    record = {"type": "SYSTEM", "subtype": "general", "opaque": "Installed contents package: x"}
    assert changes.rules().match(record) is None


def test_every_change_document_validates() -> None:
    change = changes.declared(["2026-03-01T02:00:00Z,013201000007"])[0]
    doc = changes.to_ecs(change)
    jsonschema.validate(doc, SCHEMA)
    # a document of a change cannot pass as a log event, nor a log event carry a change
    broken = copy.deepcopy(doc)
    broken["event"]["dataset"] = "panw.panos"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, SCHEMA)
    assert doc["@timestamp"] == "2026-03-01T02:00:00.000+00:00"
    assert doc["observer"]["serial_number"] == "013201000007"
    assert doc["event"]["type"] == ["change"] and doc["event"]["action"] == "declared"
