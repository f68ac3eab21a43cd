from __future__ import annotations

import pytest

from pipeline.syslog.framing import decode, frame, split_header

BODY = "1,2026/11/27 10:00:01,013201000001,DECRYPTION,0,2562,2026/11/27 10:00:00"


@pytest.mark.parametrize(
    ("message", "host", "time"),
    [
        (f"<14>Nov 27 10:00:01 fw-edge-01 {BODY}", "fw-edge-01", "Nov 27 10:00:01"),
        (f"<190>Feb  5 15:05:55 pa-test {BODY}", "pa-test", "Feb  5 15:05:55"),
        (f"Nov 27 10:00:01 fw-edge-01 {BODY}", "fw-edge-01", "Nov 27 10:00:01"),
        (f"<14>Nov 27 2026 10:00:01 fw-edge-01 {BODY}", "fw-edge-01", "Nov 27 2026 10:00:01"),
        (
            f"<14>2026-11-27T10:00:01+01:00 fw-edge-01 {BODY}",
            "fw-edge-01",
            "2026-11-27T10:00:01+01:00",
        ),
        (
            f"<14>1 2026-11-27T10:00:01.5+01:00 fw-edge-01 - - - - {BODY}",
            "fw-edge-01",
            "2026-11-27T10:00:01.5+01:00",
        ),
        (
            f'<14>1 2026-11-27T10:00:01Z fw1 panos 12 LOG [m a="x]y" b="c\\"d"][n] {BODY}',
            "fw1",
            "2026-11-27T10:00:01Z",
        ),
        (f"<14>Nov 27 10:00:01 fw-edge-01 panos[42]: {BODY}", "fw-edge-01", "Nov 27 10:00:01"),
        (BODY, None, None),
        (f"<14>{BODY}", None, None),
        # No host name: relays and some firewalls send the timestamp only. The record must not
        # be read as the host (that shifted every column by one).
        (f"Nov  3 19:09:44 {BODY}", None, "Nov  3 19:09:44"),
        (f"<14>Nov  3 19:09:44 {BODY}", None, "Nov  3 19:09:44"),
        (f"<14>Nov  3 2026 19:09:44 {BODY}", None, "Nov  3 2026 19:09:44"),
        (f"<14>2026-11-27T10:00:01Z {BODY}", None, "2026-11-27T10:00:01Z"),
        (f"2026-11-27T10:00:01.123+01:00 {BODY}", None, "2026-11-27T10:00:01.123+01:00"),
        (f"2026-11-27T10:00:01+01:00 fw-edge-01 {BODY}", "fw-edge-01", "2026-11-27T10:00:01+01:00"),
        (f"<14>1 2026-11-27T10:00:01Z - - - - - {BODY}", None, "2026-11-27T10:00:01Z"),
        # Whatever a relay puts between the header and the record: the record is found by its
        # structure (FUTURE_USE, receive time, serial, log type).
        (f"<13>Nov 27 10:00:01 relay-01 fw-edge-01 panos: {BODY}", "relay-01", "Nov 27 10:00:01"),
        (f"<14>Nov 27 10:00:01 fw-edge-01 [ctx x=1] - {BODY}", "fw-edge-01", "Nov 27 10:00:01"),
        (f"panos-relay: {BODY}", None, None),
    ],
)
def test_split_header_keeps_host_and_time(message: str, host: str | None, time: str | None) -> None:
    framed = split_header(message)
    assert framed.body == BODY
    assert framed.host == host
    assert framed.time == time


@pytest.mark.parametrize(
    "body",
    [
        "CEF:0|Palo Alto Networks|LF|2.0|DECRYPTION|end|3|src=192.0.2.1",
        "LEEF:1.0|a|b|c|d|",
        '{"LogType":"TRAFFIC"}',
    ],
)
def test_headerless_renderings_pass_through(body: str) -> None:
    assert split_header(body).body == body
    assert split_header(f"<14>Nov 27 10:00:01 fw-edge-01 {body}").body == body


def test_decode_drops_bom_and_line_end() -> None:
    assert decode(b"\xef\xbb\xbf1,a\r\n") == ("1,a", False)
    assert decode("1,a\n") == ("1,a", False)


def test_decode_replaces_invalid_utf8_and_flags_it() -> None:
    text, replaced = decode(b"1,j\xe9r\xf4me")
    assert replaced is True
    assert text == "1,j\ufffdr\ufffdme"


def test_frame_is_decode_then_split() -> None:
    framed, replaced = frame(f"<14>Nov 27 10:00:01 fw-edge-01 {BODY}\r\n".encode())
    assert (framed.body, framed.host, replaced) == (BODY, "fw-edge-01", False)


def test_text_that_only_looks_like_a_header_is_kept() -> None:
    assert split_header("Session 318075").body == "Session 318075"
    assert split_header("<garbage").body == "<garbage"


USERID_NO_HOST = (
    "Nov  3 19:09:44 1,2024/11/03 19:09:43,013201004321,USERID,login,2562,2024/11/03 19:09:43,"
    "vsys1,10.20.30.40,corp\\alice,,0,1,2700,0,0,ad-agent,,7111111111111111111,0x0,0,0,0,0,,"
    "fw-edge-01,1,,2024/11/03 19:09:43,1,0x0,corp\\alice"
)


def test_a_header_without_host_does_not_shift_the_columns() -> None:
    # The line of the bug report: the record was read one column late ("USERID" as serial,
    # "1,2024/11/03" as host, a time in the year 2388).
    from pipeline.panos import parse_line

    record = parse_line(USERID_NO_HOST)
    assert record["serial"] == "013201004321"
    assert record["type"] == "USERID"
    assert record["time_generated"].isoformat() == "2024-11-03T19:09:43+00:00"
    assert "_host" not in record
    assert record["_syslog_time"] == "Nov  3 19:09:44"


def test_receive_time_in_short_form_is_found_without_host() -> None:
    body = "1,9/16/19 10:00,1801016000,TRAFFIC,start,2049,9/16/19 10:00,1.2.3.4"
    assert split_header(f"<14>Sep 16 10:00:02 {body}") == (body, None, "Sep 16 10:00:02")
    assert split_header(f"<14>Sep 16 10:00:02 PA-1 {body}") == (body, "PA-1", "Sep 16 10:00:02")


def test_host_names_that_start_with_digits_stay_host_names() -> None:
    assert split_header(f"Nov 27 10:00:01 10.1.2.3 {BODY}").host == "10.1.2.3"
    assert split_header(f"Nov 27 10:00:01 1fw {BODY}").host == "1fw"


def test_a_relayed_header_gives_the_firewall_host_and_time() -> None:
    # A relay that forwards the whole message puts its own header first (Splunk_TA_paloalto
    # issue 45, a Panorama CONFIG line): the header nearest the record is the sender's.
    message = f"Apr 22 08:17:35 relay-01 <14>Apr 22 08:17:36 Panorama.Company {BODY}"
    assert split_header(message) == (BODY, "Panorama.Company", "Apr 22 08:17:36")


def test_strata_csv_record_is_found_by_its_structure() -> None:
    # Strata Logging Service's CSV forwarding: its own number in FUTURE_USE, ISO 8601 times,
    # "no-serial" (elastic/integrations test-panw-panos-globalprotect-sample.log).
    body = (
        "931201168,2021-11-09T21:45:36.000000Z,no-serial,GLOBALPROTECT,globalprotect,9.1,"
        "2021-11-09T21:45:14.000000Z,vsys1"
    )
    assert split_header(f"Nov 30 16:09:08 {body}") == (body, None, "Nov 30 16:09:08")
    assert split_header(f"<14>Nov 30 16:09:08 lf-01 {body}").body == body
    assert split_header(body).body == body
