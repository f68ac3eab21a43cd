"""CEF, LEEF, JSON and ``show session id`` renderings map to the same record keys as CSV."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from pipeline.errors import ParseError
from pipeline.panos import parse_line, parse_text
from pipeline.panos.cef import parse_extension
from pipeline.panos.detect import detect
from pipeline.panos.layouts import layouts

KEYS = set(layouts()["DECRYPTION"].names) | set(layouts()["TRAFFIC"].names)

CEF = (
    "CEF:0|Palo Alto Networks|LF|2.0|DECRYPTION|end|3|dtz=UTC rt=Nov 27 2026 10:00:01 "
    "PanOSDeviceSN=013201000001 start=Nov 27 2026 10:00:00 "
    "src=192.0.2.10 dst=203.0.113.20 "
    "cs1=allow-web cs1Label=Rule cn1=123456 cn1Label=SessionID "
    "spt=51000 dpt=443 proto=tcp act=allow "
    "PanOSTLSVersion=TLS1.2 PanOSErrorIndex=Certificate "
    "PanOSErrorMessage=Received fatal alert UnknownCA from client "
    "PanOSServerNameIndication=app.example.test PanOSTimeNotBefore=0 PanOSProxyType=null "
    "externalId=77"
)
JSON = (
    '{"LogType":"DECRYPTION","DeviceSN":"013201000001","TimeGenerated":"2026-11-27T10:00:00.000000Z",'
    '"SourceAddress":"192.0.2.10","DestinationAddress":"203.0.113.20","SessionID":123456,'
    '"SourcePort":51000,"DestinationPort":443,"Protocol":"tcp","Action":"allow",'
    '"TLSVersion":"TLS1.2","ErrorIndex":"Certificate",'
    '"ErrorMessage":"Received fatal alert UnknownCA from client",'
    '"ServerNameIndication":"app.example.test",'
    '"TimeNotBefore":1767225600,"ProxyType":null,"SequenceNo":77,"Rule":"allow-web"}'
)
LEEF = "LEEF:2.0|Palo Alto Networks|LF|2.0|DECRYPTION|^|" + "^".join(
    [
        "cat=decryption",
        "DeviceSN=013201000001",
        "TimeGenerated=2026-11-27T10:00:00Z",
        "src=192.0.2.10",
        "dst=203.0.113.20",
        "SessionID=123456",
        "srcPort=51000",
        "dstPort=443",
        "proto=tcp",
        "action=allow",
        "TLSVersion=TLS1.2",
        "ErrorIndex=Certificate",
        "ErrorMessage=Received fatal alert UnknownCA from client",
        "ServerNameIndication=app.example.test",
        "SequenceNo=77",
        "RuleName=allow-web",
    ]
)
COMMON = {
    "type": "DECRYPTION",
    "serial": "013201000001",
    "src": "192.0.2.10",
    "dst": "203.0.113.20",
    "sessionid": 123456,
    "sport": 51000,
    "dport": 443,
    "proto": "tcp",
    "action": "allow",
    "tls_version": "TLS1.2",
    "err_index": "Certificate",
    "error": "Received fatal alert UnknownCA from client",
    "sni": "app.example.test",
    "seqno": 77,
    "rule": "allow-web",
    "time_generated": datetime(2026, 11, 27, 10, 0, 0, tzinfo=UTC),
}


@pytest.mark.parametrize(("message", "fmt"), [(CEF, "cef"), (JSON, "json"), (LEEF, "leef")])
def test_renderings_give_the_csv_keys(message: str, fmt: str) -> None:
    rec = parse_line("<14>Nov 27 10:00:01 fw-edge-01 " + message)
    assert rec["_format"] == fmt
    for key, value in COMMON.items():
        assert rec[key] == value, key
    assert "proxy_type" not in rec  # null
    assert {k for k in rec if not k.startswith("_")} <= KEYS


def test_cef_epoch_zero_certificate_date_is_absent_and_json_epoch_is_a_time() -> None:
    assert "notbefore" not in parse_line(CEF)
    assert parse_line(JSON)["notbefore"] == datetime(2026, 1, 1, tzinfo=UTC)


def test_cef_extension_unescapes() -> None:
    assert parse_extension(r"a=x\=y b=c\\d msg=two words") == [
        ("a", "x=y"),
        ("b", "c\\d"),
        ("msg", "two words"),
    ]


def test_cef_onbox_header_order() -> None:
    rec = parse_line(
        "CEF:0|Palo Alto Networks|PAN-OS|11.1.2|end|TRAFFIC|1|"
        "rt=Nov 27 2026 10:00:01 src=192.0.2.10 reason=tcp-fin"
    )
    assert (rec["type"], rec["subtype"], rec["session_end_reason"]) == ("TRAFFIC", "end", "tcp-fin")


@pytest.mark.parametrize(
    ("message", "error_type"),
    [
        ("CEF:0|Palo Alto Networks|LF", "too_few_columns"),
        ("CEF:0|a|b|c|d|e|f|src=192.0.2.1", "not_panos"),
        ("LEEF:1.0|a|b", "too_few_columns"),
        ("{not json", "unknown_format"),
        ("[1, 2]", "not_panos"),
        ('{"a": 1}', "not_panos"),
    ],
)
def test_rendering_errors(message: str, error_type: str) -> None:
    with pytest.raises(ParseError) as info:
        parse_line(message)
    assert info.value.error_type == error_type


SESSION = """admin@fw> show session id 318075
Session 318075
c2s flow:
source: 192.0.2.1 [untrust]
dst: 198.51.100.1
proto: 6
sport: 56272 dport: 443
state: INIT type: FLOW
src user: example\\alice
dst user: unknown
s2c flow:
source: 203.0.113.100 [dmz]
dst: 192.0.2.1
proto: 6
sport: 8443 dport: 56272
state: INIT type: FLOW
src user: unknown
dst user: unknown
start time : Wed Apr 17 14:04:30 2019
vsys : vsys1
application : ssl
rule : inbound-web
end-reason : decrypt-error
tracker stage firewall : proxy decrypt failure
tracker stage l7proc : ctd proc changed
mystery line without colon
"""


def test_show_session_id() -> None:
    rec = parse_line(SESSION)
    assert rec["type"] == "SESSION" and rec["_format"] == "session"
    expected = {
        "sessionid": 318075,
        "app": "ssl",
        "rule": "inbound-web",
        "vsys": "vsys1",
        "src": "192.0.2.1",
        "dst": "198.51.100.1",
        "sport": 56272,
        "dport": 443,
        "proto": "tcp",
        "from": "untrust",
        "to": "dmz",
        "natdst": "203.0.113.100",
        "natdport": 8443,
        "tracker_stage_firewall": "proxy decrypt failure",
        "tracker_stage_l7proc": "ctd proc changed",
        "session_end_reason": "decrypt-error",
        "srcuser": "example\\alice",
        "start": datetime(2019, 4, 17, 14, 4, 30, tzinfo=UTC),
    }
    for key, value in expected.items():
        assert rec[key] == value, key
    assert "natsrc" not in rec
    assert rec["_extra"] == ["mystery line without colon"]


def test_parse_text_splits_outputs_and_log_lines() -> None:
    line = "1,2026/11/27 10:00:01,013201000001,SYSTEM,general,0,2026/11/27 10:00:00,,general"
    output = SESSION.replace("mystery line without colon\n", "")
    records = parse_text(output + line + "\n\n" + output.replace("318075", "42"))
    assert [r["type"] for r in records] == ["SESSION", "SYSTEM", "SESSION"]
    assert records[2]["sessionid"] == 42


def test_detect() -> None:
    assert detect("1,2026/11/27") == "csv"
    assert detect("CEF:0|") == "cef"
    assert detect("LEEF:1.0|") == "leef"
    assert detect("{}") == "json"
    assert detect("Session 1\nc2s flow:") == "session"
    assert detect("        end-reason                           : aged-out") == "session"
    assert detect("hello, world") == "csv"


def test_fragment_without_session_line() -> None:
    rec = parse_line("    tracker stage firewall : Aged out\n    end-reason : aged-out")
    assert rec["tracker_stage_firewall"] == "Aged out"
    assert "sessionid" not in rec


def test_cef_unescapes_newlines() -> None:
    # CEF extension values escape a line break as \n (ArcSight CEF spec, "Character encoding").
    assert parse_extension(r"msg=first\nsecond cs1=a\\nb") == [
        ("msg", "first\nsecond"),
        ("cs1", "a\\nb"),
    ]


def test_none_none_is_no_value_in_key_value_renderings() -> None:
    # Strata Logging Service writes "None:None" for an absent user.
    rec = parse_line(
        JSON.replace('"Rule":"allow-web"', '"Rule":"allow-web","SourceUser":"None:None"')
    )
    assert "srcuser" not in rec
    assert "srcuser" not in parse_line(LEEF + "^usrName=None:None")


@pytest.mark.parametrize("bad", ["2026-13-27T10:00:00Z", "2026-11-27T25:00:00Z"])
def test_an_invalid_iso_time_is_set_aside_not_a_crash(bad: str) -> None:
    # Month 13 and hour 25 once sent the time converters into endless recursion.
    rec = parse_line(LEEF.replace("TimeGenerated=2026-11-27T10:00:00Z", f"TimeGenerated={bad}"))
    assert rec["_invalid"] == {"time_generated": bad}
    assert "time_generated" not in rec
    assert rec["type"] == "DECRYPTION" and rec["sessionid"] == 123456
