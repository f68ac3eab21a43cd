"""ECS -> OCSF: every golden document that maps is a valid OCSF 1.8.0 event by the official
schema (the schema.ocsf.io export bundled in ``ocsf-json-schema``, checked with ``jsonschema``
offline); values are checked against the log lines, the OCSF schema and RFC 8446."""

from __future__ import annotations

import ssl
import tomllib
from datetime import datetime
from pathlib import Path

import orjson
import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID

from pipeline.cli import main
from pipeline.diagnosis import classify
from pipeline.ecs import to_ecs
from pipeline.errors import ConfigError
from pipeline.ocsf import MAPPING_PATH, dn_from_cn, load_mapping, to_ocsf
from pipeline.panos import parse_text as read_records
from tests.ocsf_schema import OFFICIAL, schema_errors

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = ROOT / "tests" / "golden"
DIAGNOSIS = GOLDEN / "diagnosis"
MAPPED_TYPES = {"DECRYPTION", "TRAFFIC", "SESSION"}


def golden_items() -> list[tuple[str, dict]]:
    out = []
    for path in sorted(GOLDEN.glob("*.expected.json")):
        for item in orjson.loads(path.read_bytes()):
            if "ecs" in item:
                out.append((f"{path.name.removesuffix('.expected.json')}:{item['line']}", item))
    return out


GOLDEN_ITEMS = golden_items()


def diagnosed(case: str) -> list[dict]:
    """The ECS documents of a diagnosis case, each diagnosed with its session's other lines."""
    records = read_records((DIAGNOSIS / f"{case}.log").read_text(encoding="utf-8"))
    return [to_ecs(r, classify(r, [o for o in records if o is not r])) for r in records]


def ms(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp() * 1000)


# --- validity ------------------------------------------------------------------------------
def test_the_golden_set_covers_each_mapped_log_type_and_some_left_out():
    types = {item["ecs"]["panw"]["panos"]["type"] for _, item in GOLDEN_ITEMS}
    assert types >= MAPPED_TYPES
    assert types - MAPPED_TYPES  # THREAT, SYSTEM, ... are in the golden set too


@pytest.mark.parametrize(("name", "item"), GOLDEN_ITEMS, ids=[n for n, _ in GOLDEN_ITEMS])
def test_every_golden_document_that_maps_is_valid_ocsf_1_8_0(name, item):
    log_type = item["ecs"]["panw"]["panos"]["type"]
    event = to_ocsf(item["ecs"])
    if log_type not in MAPPED_TYPES:
        assert event is None, f"{log_type} is left out on purpose"
        return
    assert event is not None
    assert schema_errors(event) == []
    assert event["class_uid"] == 4001 and event["category_uid"] == 4
    assert event["type_uid"] == event["class_uid"] * 100 + event["activity_id"]
    assert event["metadata"]["version"] == "1.8.0"
    assert event["metadata"]["log_name"] == log_type
    if not item["id"].split(":")[-1].startswith("h"):  # ids from serial:type:seqno
        assert event["metadata"]["uid"] == item["id"]
    assert event["raw_data"] == item["ecs"]["event"]["original"]


DIAGNOSIS_CASES = sorted(p.stem for p in DIAGNOSIS.glob("*.log"))


@pytest.mark.parametrize("case", DIAGNOSIS_CASES)
def test_diagnosed_documents_are_valid_and_carry_the_diagnosis(case):
    expected = orjson.loads((DIAGNOSIS / f"{case}.expected.json").read_bytes())
    causes = {
        c["id"]: c for c in tomllib.loads((ROOT / "schemas" / "causes.toml").read_text())["causes"]
    }
    docs = diagnosed(case)
    events = [to_ocsf(doc) for doc in docs]
    for event in events:
        assert event is not None
        assert schema_errors(event) == []
        assert event["type_uid"] == event["class_uid"] * 100 + event["activity_id"]
    first = events[0]
    if expected["cause"] is None:
        assert (
            "decryptscope" not in first["unmapped"]
            or not first["unmapped"]["decryptscope"]["failure"]
        )
        assert first["severity_id"] == 1 and "status_detail" not in first
        return
    ds = first["unmapped"]["decryptscope"]
    assert (ds["cause"], ds["mode"]) == (expected["cause"], expected["mode"])
    assert ds["remediation"] and ds["evidence"]
    assert first["status_detail"] == causes[expected["cause"]]["title"]
    assert first["status_id"] == 2 and first["status"] == "Failure"
    assert first["severity_id"] >= 2


# --- values against their sources ----------------------------------------------------------
def test_a_decryption_failure_in_detail():
    # tests/golden/diagnosis/server-cert-untrusted-issuer.log, read by eye: CSV columns of the
    # PAN-OS 11.x DECRYPTION log.
    (event,) = [to_ocsf(d) for d in diagnosed("server-cert-untrusted-issuer")]
    assert event["time"] == ms("2026-11-20T10:15:02.120+00:00")  # high-resolution timestamp
    assert event["activity_id"] == 3 and event["activity_name"] == "Reset"
    assert event["src_endpoint"]["ip"] == "192.0.2.10" and event["src_endpoint"]["port"] == 51544
    assert event["src_endpoint"]["proxy_endpoint"] == {"ip": "198.51.100.7", "port": 31544}
    assert event["dst_endpoint"]["ip"] == "203.0.113.20"
    assert event["dst_endpoint"]["hostname"] == "intranet.example.org"
    assert event["dst_endpoint"]["zone"] == "untrust" and event["src_endpoint"]["zone"] == "trust"
    assert event["connection_info"]["protocol_num"] == 6
    assert event["connection_info"]["direction_id"] == 2  # Forward proxy: outbound
    assert event["connection_info"]["uid"] == "1003"  # session id column
    tls = event["tls"]
    assert tls["version"] == "TLS1.2" and tls["sni"] == "intranet.example.org"
    cert = tls["certificate"]
    assert cert["issuer"] == "CN=Example Issuing CA 1"
    assert cert["subject"] == "CN=intranet.example.org"
    assert cert["serial_number"].lower() == "ba67e84495b59512"
    assert cert["created_time"] == ms("2026-01-10T00:00:00+00:00")
    assert cert["expiration_time"] == ms("2027-01-10T00:00:00+00:00")
    assert cert["fingerprints"] == [
        {
            "algorithm_id": 3,
            "algorithm": "SHA-256",
            "value": "a6a13e87221733b712ddbd0978da1ffdd69503dfd1f0a86f73d86bf90b743b85",
        }
    ]
    assert event["status_code"] == "Certificate"  # the Error Index column
    assert event["firewall_rule"]["name"] == "outbound-web"
    assert event["policy"]["name"] == "decrypt-outbound"
    assert event["device"]["hw_info"]["serial_number"] == "012801096514"
    observed = {(o["name"], o["value"]) for o in event["observables"]}
    assert ("src_endpoint.ip", "192.0.2.10") in observed
    assert ("tls.sni", "intranet.example.org") in observed
    assert all(o["type_id"] in (1, 2, 4, 37) for o in event["observables"])


@pytest.mark.parametrize(
    ("case", "alert"),
    [
        ("client-rejected-firewall-cert", 48),  # "... fatal alert UnknownCA from client"
        ("globalprotect-client-untrusted-cert", 46),  # CertificateUnknown
        ("tls-protocol-error", 50),  # DecodeError
        ("server-cert-expired", 45),  # CertificateExpired
    ],
)
def test_the_tls_alert_number_comes_from_the_error_text(case, alert):
    doc = diagnosed(case)[0]
    assert "fatal alert" in doc["event"]["reason"].lower()
    assert to_ocsf(doc)["tls"]["alert"] == alert


@pytest.mark.parametrize(
    ("case", "line", "activity"),
    [
        ("decrypt-error", 0, 3),  # TRAFFIC end, decrypt-error: the firewall ended it
        ("none-tcp-fin", 0, 2),  # TRAFFIC end, tcp-fin: Close
        ("none-policy-deny", 0, 4),  # TRAFFIC drop: Fail (Tenzir's mapping)
        ("none-successful-handshake", 0, 6),  # DECRYPTION without error: Traffic
        ("inbound-proxy-handshake-failure", 0, 3),  # show session id, proxy decrypt failure
    ],
)
def test_activity_follows_log_type_subtype_and_end_reason(case, line, activity):
    event = to_ocsf(diagnosed(case)[line])
    assert event["activity_id"] == activity
    assert event["type_uid"] == 400100 + activity


def test_traffic_action_becomes_action_and_disposition():
    allowed = to_ocsf(diagnosed("none-tcp-fin")[0])
    denied = to_ocsf(diagnosed("none-policy-deny")[0])  # subtype drop, action column "deny"
    assert (allowed["action_id"], allowed["disposition_id"]) == (1, 1)
    assert (denied["action_id"], denied["disposition_id"]) == (2, 2)
    assert (denied["action"], denied["disposition"]) == ("Denied", "Blocked")
    decryption = to_ocsf(diagnosed("server-cert-revoked")[0])
    assert "action_id" not in decryption  # the security rule's verdict says nothing of TLS


def test_the_input_document_is_not_changed():
    doc = diagnosed("unsupported-cipher")[0]
    before = orjson.dumps(doc)
    to_ocsf(doc)
    assert orjson.dumps(doc) == before


def test_a_failure_without_tls_version_keeps_no_tls_object():
    # OCSF requires tls.version; the empty-fields golden case has none.
    (item,) = [i for n, i in GOLDEN_ITEMS if n.startswith("decryption-empty-fields")]
    event = to_ocsf(item["ecs"])
    assert "tls" not in event and schema_errors(event) == []


# --- the mapping file against its references -----------------------------------------------
def _official_captions(attribute: str, obj: str | None = None) -> dict[int, str]:
    if obj is None:
        attrs = OFFICIAL["classes"]["network_activity"]["attributes"]
    else:
        attrs = OFFICIAL["objects"][obj]["attributes"]
    return {int(k): v["caption"] for k, v in attrs[attribute]["enum"].items()}


def test_captions_and_ids_in_the_mapping_are_the_schemas():
    data = tomllib.loads(MAPPING_PATH.read_text())
    for name, table in data["captions"].items():
        if name.startswith("connection_info."):
            official = _official_captions("direction_id", "network_connection_info")
        else:
            official = _official_captions(name)
        for uid, caption in table.items():
            assert official[int(uid)] == caption, (name, uid)
    observable = _official_captions("type_id", "observable")
    for o in data["observables"]:
        assert observable[o["type_id"]] == o["type"]
    algorithm = _official_captions("algorithm_id", "fingerprint")
    for f in data["fields"]:
        if "append" in f:
            assert algorithm[f["append"]["algorithm_id"]] == f["append"]["algorithm"]
    assert (
        _official_captions("type_id", "device")[data["constants"]["device.type_id"]]
        == (data["constants"]["device.type"])
    )
    assert OFFICIAL["classes"]["network_activity"]["uid"] == data["constants"]["class_uid"]


def test_every_category_of_the_catalogue_has_a_severity():
    data = tomllib.loads(MAPPING_PATH.read_text())
    (severity,) = [e for e in data["enums"] if e["to"] == "severity_id"]
    catalogue = tomllib.loads((ROOT / "schemas" / "causes.toml").read_text())
    assert set(severity["values"]) == set(catalogue["categories"])


def test_tls_alert_numbers_are_pythons_ssl_module_ones():
    codes = tomllib.loads(MAPPING_PATH.read_text())["tls_alert"]["codes"]
    by_code = {v: k for k, v in codes.items()}
    for alert in ssl.AlertDescription:
        name = alert.name.removeprefix("ALERT_DESCRIPTION_").lower()
        assert by_code[alert.value] == name.replace("cancelled", "canceled"), alert


@pytest.mark.parametrize(
    "cn",
    [
        "plain.example.com",
        "Acme, Inc. CA",
        "#hash",
        " lead",
        "trail ",
        " ",
        "a\\ ",
        "k=v",
        'q"uote+plus;<>\\',
    ],
)
def test_dn_from_cn_is_rfc4514_as_cryptography_writes_it(cn):
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    assert dn_from_cn(cn) == name.rfc4514_string()


def test_a_broken_mapping_is_refused_naming_the_file(tmp_path):
    text = MAPPING_PATH.read_text().replace('as = "epoch_ms"', 'as = "fortnights"', 1)
    path = tmp_path / "mapping.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=r"mapping\.toml.*fortnights"):
        load_mapping(path)
    path.write_text("constants = 3\n")
    with pytest.raises(ConfigError, match=r"mapping\.toml"):
        load_mapping(path)


# --- the command ---------------------------------------------------------------------------
def test_parse_format_ocsf_writes_one_valid_event_per_mapped_record(tmp_path, capsysbinary):
    # sample-sc4s-mixed: TRAFFIC, SYSTEM and DECRYPTION lines (one not parseable).
    case = GOLDEN / "sample-sc4s-mixed.log"
    expected = orjson.loads(case.with_name("sample-sc4s-mixed.expected.json").read_bytes())
    mapped = [i for i in expected if "ecs" in i and i["record"]["type"] in MAPPED_TYPES]
    assert len(mapped) < len([i for i in expected if "ecs" in i])  # some are left out
    assert main(["parse", "--format", "ocsf", str(case)]) == 0
    lines = capsysbinary.readouterr().out.splitlines()
    events = [orjson.loads(line) for line in lines]
    assert len(events) == len(mapped)
    assert [e["metadata"]["log_name"] for e in events] == [i["record"]["type"] for i in mapped]
    for event in events:
        assert schema_errors(event) == []
    assert main(["parse", str(case)]) == 0
    ecs = capsysbinary.readouterr().out.splitlines()
    assert len(ecs) == len([i for i in expected if "ecs" in i])
