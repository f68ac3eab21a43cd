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
