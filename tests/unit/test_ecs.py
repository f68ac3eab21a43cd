"""Record -> ECS document: Elastic's expected values where they are right, ECS where Elastic's
mapping is wrong for TLS, the diagnosis under decryptscope.*, stable document ids."""

from __future__ import annotations

import csv
import random
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import communityid
import jsonschema
import orjson
import pytest

from pipeline.community_id import community_id
from pipeline.diagnosis import Diagnosis
from pipeline.ecs import document_id, to_ecs
from pipeline.panos import parse_line
from pipeline.resources import SCHEMAS

GOLDEN = Path(__file__).resolve().parent.parent / "golden"
ELASTIC_LINE = (
    (GOLDEN / "sample-elastic-decryption.log").read_text(encoding="utf-8").splitlines()[1]
)
ELASTIC = orjson.loads((GOLDEN / "reference" / "elastic-decryption-expected.json").read_bytes())[
    "content"
]["expected"][0]
SCHEMA = orjson.loads((SCHEMAS / "ecs" / "event.schema.json").read_bytes())


@pytest.fixture(scope="module")
def elastic_doc() -> dict[str, Any]:
    return to_ecs(parse_line(ELASTIC_LINE, default_tz="-08:00"))


def test_community_id_matches_elastic(elastic_doc: dict[str, Any]) -> None:
    original, nat = ELASTIC["network"]["community_id"]
    assert nat == ELASTIC["panw"]["panos"]["network"]["nat"]["community_id"]
    assert elastic_doc["network"]["community_id"] == original == "1:25YeIgDPUoi6wutrn+CXsDJ9eSY="
    assert elastic_doc["panw"]["panos"]["network"]["nat"]["community_id"] == nat


@pytest.mark.parametrize(
    "path",
    [
        "source.ip",
        "source.port",
        "source.nat.ip",
        "source.nat.port",
        "destination.ip",
        "destination.port",
        "destination.nat.ip",
        "destination.nat.port",
        "event.created",
        "event.kind",
        "event.category",
        "event.outcome",
        "event.timezone",
        "event.original",
        "network.application",
        "network.transport",
        "observer.hostname",
        "observer.serial_number",
        "observer.vendor",
        "observer.product",
        "observer.type",
        "observer.ingress.zone",
        "observer.egress.interface.name",
        "rule.name",
        "rule.uuid",
        "tls.cipher",
        "tls.version",
        "tls.version_protocol",
        "labels.ssl_decrypted",
        "labels.nat_translated",
        "related.ip",
        "related.hosts",
        "related.hash",
        "panw.panos.hs_stage_c2f",
        "panw.panos.hs_stage_f2s",
        "panw.panos.tls.error_type",
        "panw.panos.proxy_type",
        "panw.panos.chain_status",
        "panw.panos.root_certificate_status",
        "panw.panos.error_message",
        "panw.panos.action_flags",
        "panw.panos.application.tunneled",
        "panw.panos.high_resolution_timestamp",
        "panw.panos.logged_time",
        "panw.panos.config_version",
        "panw.panos.tunnel_type",
        "panw.panos.virtual_sys",
    ],
)
def test_same_values_as_elastic(elastic_doc: dict[str, Any], path: str) -> None:
    assert _get(elastic_doc, path) == _get(ELASTIC, path)


def test_ecs_wins_over_elastic_for_tls(elastic_doc: dict[str, Any]) -> None:
    x509 = elastic_doc["tls"]["server"]["x509"]
    assert x509["subject"]["common_name"] == ELASTIC["x509"]["subject"]["common_name"]
    assert x509["issuer"]["common_name"] == ELASTIC["x509"]["issuer"]["common_name"]
    assert x509["serial_number"] == ELASTIC["tls"]["client"]["x509"]["serial_number"].upper()
    assert x509["not_before"] == ELASTIC["tls"]["client"]["not_before"]
    assert x509["public_key_size"] == 2048
    assert elastic_doc["tls"]["server"]["hash"] == ELASTIC["tls"]["client"]["hash"]
    assert elastic_doc["tls"]["established"] is False
    assert elastic_doc["event"]["reason"] == "Received fatal alert CertificateUnknown from client"
    # The high resolution timestamp is the better @timestamp (Elastic PR #10618).
    assert elastic_doc["@timestamp"] == "2021-11-11T15:42:44.845-08:00"
    assert "client" not in elastic_doc["tls"]


def test_sni_is_destination_domain_and_hash_by_length() -> None:
    line = ELASTIC_LINE.replace(
        ",com.example.com,com.example.com,,,", ",a.example,b.example,root,sni.example.test,"
    )
    line = line.replace(
        "a6a13e87221733b712ddbd0978da1ffdd69503dfd1f0a86f73d86bf90b743b85", "AB" * 20
    )
    doc = to_ecs(parse_line(line))
    assert doc["destination"]["domain"] == doc["tls"]["client"]["server_name"] == "sni.example.test"
    assert doc["tls"]["server"]["hash"] == {"sha1": "ab" * 20}
    assert "sni.example.test" in doc["related"]["hosts"]


def test_anonymised_fingerprint_is_not_a_hash() -> None:
    line = ELASTIC_LINE.replace(
        "a6a13e87221733b712ddbd0978da1ffdd69503dfd1f0a86f73d86bf90b743b85", "X" * 64
    )
    doc = to_ecs(parse_line(line))
    assert "hash" not in doc["tls"]["server"]
    jsonschema.validate(doc, SCHEMA)


def test_timestamp_falls_back_to_time_generated_in_firewall_zone() -> None:
    line = ELASTIC_LINE.replace("2021-11-11T15:42:44.845-08:00", "")
    doc = to_ecs(parse_line(line, tz_for={"007051000184334": "Europe/Paris"}.get))
    assert doc["@timestamp"] == "2021-11-11T15:42:44.000+01:00"
    assert doc["event"]["timezone"] == "+01:00"


def test_diagnosis_and_correlation() -> None:
    record = parse_line(ELASTIC_LINE)
    diagnosis = Diagnosis(
        cause="client-rejects-forward-trust",
        category="certificate",
        mode="forward-proxy",
        confidence=0.9,
        evidence=({"field": "error", "value": "x", "source": "DECRYPTION"},),
        remediation="Deploy the CA.",
        references=("https://docs.paloaltonetworks.com/",),
    )
    correlation = {"key": "007051000184334:33288", "joined": ["TRAFFIC", "DECRYPTION"], "count": 2}
    doc = to_ecs(record, diagnosis, correlation=correlation, original="raw text")
    assert doc["decryptscope"] == {
        **diagnosis.as_dict(),
        "failure": True,
        "correlation": correlation,
    }
    assert doc["event"]["original"] == "raw text"
    jsonschema.validate(doc, SCHEMA)
    plain = to_ecs(record)
    # Not diagnosed, but a decryption event: its mode from the Proxy Type column.
    assert plain["decryptscope"] == {"failure": False, "mode": "globalprotect"}


@pytest.mark.parametrize(
    ("case", "mode"),
    [
        ("none-successful-handshake", "forward-proxy"),  # Proxy Type "Forward"
        ("none-no-decrypt", "no-decrypt"),  # Proxy Type "No Decrypt"
        ("none-tcp-fin", "unknown"),  # TRAFFIC end, Flags 0x1400019: decrypted
        ("none-policy-deny", None),  # TRAFFIC drop, Flags 0x0
    ],
)
def test_decryption_events_that_are_not_failures_carry_their_mode(case: str, mode: str) -> None:
    text = (GOLDEN / "diagnosis" / f"{case}.log").read_text(encoding="utf-8")
    line = next(t for t in text.splitlines() if t and not t.startswith("#"))
    doc = to_ecs(parse_line(line))
    expected = {"failure": False} if mode is None else {"failure": False, "mode": mode}
    assert doc["decryptscope"] == expected
    jsonschema.validate(doc, SCHEMA)


def test_document_id_is_stable_and_distinct() -> None:
    a = parse_line(ELASTIC_LINE)
    assert document_id(a) == "007051000184334:DECRYPTION:7028724914890736000"
    assert document_id(parse_line(ELASTIC_LINE)) == document_id(a)
    b = parse_line(ELASTIC_LINE.replace(",7028724914890736000,", ",7028724914890736001,"))
    assert document_id(b) != document_id(a)
    no_seq = parse_line(ELASTIC_LINE.replace(",7028724914890736000,", ",,"))
    assert document_id(no_seq) == document_id(
        parse_line(ELASTIC_LINE.replace(",7028724914890736000,", ",,"))
    )
    assert document_id(no_seq).startswith("007051000184334:DECRYPTION:h")


def test_record_without_time_gets_read_time() -> None:
    rec = parse_line("    end-reason : aged-out")
    rec["_received_at"] = datetime(2026, 1, 1, tzinfo=UTC)
    assert to_ecs(rec)["@timestamp"] == "2026-01-01T00:00:00.000+00:00"


@pytest.mark.parametrize("seed", range(5))
def test_community_id_matches_reference_implementation(seed: int) -> None:
    rng = random.Random(seed)
    calc = communityid.CommunityID()
    for _ in range(200):
        v6 = rng.random() < 0.3
        if v6:
            src = f"2001:db8::{rng.randrange(1, 0xFFFF):x}"
            dst = f"2001:db8:1::{rng.randrange(1, 0xFFFF):x}"
        else:
            src = f"192.0.2.{rng.randrange(1, 255)}"
            dst = rng.choice([f"198.51.100.{rng.randrange(1, 255)}", src])
        proto = rng.choice(["tcp", "udp", "sctp", "icmp", "gre"])
        if proto == "icmp" and v6:
            proto = "ipv6-icmp"
        sport, dport = rng.randrange(0, 65536), rng.randrange(0, 65536)
        if proto in ("icmp", "ipv6-icmp"):
            sport, dport = rng.choice([0, 3, 8, 11, 128, 129, 135]), rng.randrange(0, 16)
        number = {"tcp": 6, "udp": 17, "sctp": 132, "icmp": 1, "ipv6-icmp": 58, "gre": 47}[proto]
        if number in (6, 17, 132, 1, 58):
            tpl = communityid.FlowTuple(number, src, dst, sport, dport)
        else:
            tpl = communityid.FlowTuple(number, src, dst)
        assert community_id(src, dst, proto, sport, dport) == calc.calc(tpl), (
            src,
            dst,
            proto,
            sport,
            dport,
        )


def test_community_id_unknown_inputs() -> None:
    assert community_id("192.0.2.1", "198.51.100.1", "nonsense", 1, 2) is None
    assert community_id("192.0.2.1", "2001:db8::1", "tcp", 1, 2) is None
    assert community_id("192.0.2.1", "198.51.100.1", "tcp", None, 2) is None
    assert community_id("192.0.2.1", "198.51.100.1", "tcp", 70000, 2) is None


# --- every emitted ECS field exists in ECS with a compatible type -------------------------------
_ECS_CSV = SCHEMAS / "ecs" / "ecs-fields.csv"  # ECS 9.5 generated/csv/fields.csv
_COMPATIBLE = {
    str: {
        "keyword",
        "constant_keyword",
        "wildcard",
        "text",
        "match_only_text",
        "ip",
        "date",
        "flattened",
    },
    int: {"long", "integer", "short", "byte", "unsigned_long", "float", "double", "scaled_float"},
    bool: {"boolean"},
    float: {"float", "double", "scaled_float", "half_float"},
}


def _ecs_types() -> dict[str, str]:
    with _ECS_CSV.open(encoding="utf-8", newline="") as fh:
        return {row["Field"]: row["Type"] for row in csv.DictReader(fh)}


def _leaves(doc: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for key, value in doc.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            out.extend(_leaves(value, path + "."))
        elif isinstance(value, list):
            out.extend((path, item) for item in value)
        else:
            out.append((path, value))
    return out


def _is_oversized_integer(value: Any) -> bool:
    return isinstance(value, str) and value.lstrip("-").isdigit() and abs(int(value)) >= 2**63


def _golden_documents() -> list[dict[str, Any]]:
    docs = []
    for path in sorted(GOLDEN.glob("*.expected.json")):
        docs.extend(item["ecs"] for item in orjson.loads(path.read_bytes()) if "ecs" in item)
    return docs


def test_every_emitted_field_is_ecs_with_a_compatible_type() -> None:
    types = _ecs_types()
    docs = _golden_documents()
    assert len(docs) > 50
    seen = set()
    for doc in docs:
        for path, value in _leaves(doc):
            if path.startswith(("panw.panos.", "decryptscope.")):
                continue
            if path.startswith("labels."):
                assert types["labels"] == "object"
                continue
            seen.add(path)
            assert path in types, f"{path} is not an ECS field"
            if _is_oversized_integer(value) and types[path] in _COMPATIBLE[int]:
                continue  # kept as text beyond 64 bits; the index ignores it as malformed
            assert types[path] in _COMPATIBLE[type(value)], (
                f"{path}: {type(value).__name__} vs {types[path]}"
            )
    assert {"tls.server.x509.subject.common_name", "network.community_id", "event.reason"} <= seen


def _get(doc: dict[str, Any], path: str) -> Any:
    value: Any = doc
    for part in path.split("."):
        value = value[part]
    return value


# --- fixes found on real device lines ---------------------------------------------------------
SEKOIA_NO_DECRYPT = (
    (GOLDEN / "sample-sekoia-decryption-csv.log").read_text(encoding="utf-8").splitlines()[1]
)


def test_times_of_one_line_agree_without_a_zone_setting() -> None:
    # The Elastic sample was logged at UTC-8: its High Resolution Timestamp says so, and every
    # local time of the line is read in that offset (no default_timezone given: UTC).
    doc = to_ecs(parse_line(ELASTIC_LINE))
    assert doc["@timestamp"] == "2021-11-11T15:42:44.845-08:00"
    assert doc["event"]["created"] == "2021-11-11T15:42:44.000-08:00"
    assert doc["event"]["timezone"] == "-08:00"
    assert doc["panw"]["panos"]["logged_time"] == "2021-11-11T15:42:44.000-08:00"
    assert ",2021/11/11 15:21:28,2022/11/11 15:21:28," in ELASTIC_LINE
    x509 = doc["tls"]["server"]["x509"]
    assert x509["not_before"] == "2021-11-11T15:21:28.000-08:00"
    assert x509["not_after"] == "2022-11-11T15:21:28.000-08:00"


def test_no_decrypt_record_is_not_called_decrypted() -> None:
    # A real 10.2 No Decrypt line with flags 0x400400 and handshake stages "Unknown".
    record = parse_line(SEKOIA_NO_DECRYPT)
    assert record["proxy_type"] == "No Decrypt" and record["flags"] == 0x400400
    doc = to_ecs(record)
    assert doc["labels"] == {"nat_translated": True}
    assert "established" not in doc["tls"]
    assert doc["event"]["outcome"] == "unknown"


def test_decrypted_traffic_is_the_ssl_decrypted_bit() -> None:
    # KB "How to Determine if Session was Decrypted Based on Flags": 0x01000000.
    line = ELASTIC_LINE.replace(",0x1400000,", ",0x400400,")
    labels = to_ecs(parse_line(line))["labels"]
    assert "decrypted_traffic" not in labels and "ssl_decrypted" not in labels
    assert labels["decrypt_mirror"] is True
    labels = to_ecs(parse_line(ELASTIC_LINE))["labels"]
    assert labels["decrypted_traffic"] is True and labels["ssl_decrypted"] is True


def test_integers_beyond_64_bits_keep_the_document() -> None:
    line = ELASTIC_LINE.replace(",33288,1,49908,", ",33288,184467440737095516161,49908,")
    record = parse_line(line)
    assert record["repeatcnt"] == "184467440737095516161"
    doc = to_ecs(record)
    assert orjson.loads(orjson.dumps(doc))["panw"]["panos"]["repeat_count"] == (
        "184467440737095516161"
    )
    assert doc["source"]["ip"] == "81.2.69.145"


def test_threat_url_is_split() -> None:
    line = (
        "1,2026/11/27 10:00:01,013201000001,THREAT,url,2562,2026/11/27 10:00:00,192.0.2.10,"
        "203.0.113.20,,,allow-web,,,web-browsing,vsys1,trust,untrust,ethernet1/2,ethernet1/1,,,"
        "123456,1,51000,80,0,0,0x0,tcp,reset-both,"
        '"Shop.Example.test:8080/a/b/c.PHP?x=1&y=2#frag",(9999),shopping,informational,'
        "client-to-server,7300000000000000001,0x0"
    )
    doc = to_ecs(parse_line(line))
    assert doc["url"] == {
        "original": "http://Shop.Example.test:8080/a/b/c.PHP?x=1&y=2#frag",
        "full": "http://Shop.Example.test:8080/a/b/c.PHP?x=1&y=2#frag",
        "scheme": "http",
        "domain": "shop.example.test",
        "port": 8080,
        "path": "/a/b/c.PHP",
        "extension": "php",
        "query": "x=1&y=2",
        "fragment": "frag",
    }
    assert doc["destination"]["domain"] == "shop.example.test"
    assert doc["event"]["outcome"] == "failure"
    assert doc["event"]["action"] == "reset-both"


def test_system_auth_client_address_is_the_source() -> None:
    line = (GOLDEN / "sample-sekoia-system.log").read_text(encoding="utf-8").splitlines()[1]
    doc = to_ecs(parse_line(line))
    assert doc["source"]["ip"] == "1.2.3.4"
    assert doc["event"]["outcome"] == "success"
    assert "1.2.3.4" in doc["related"]["ip"]
