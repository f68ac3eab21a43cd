"""Syslog framing: turn the bytes of one message into text and take the syslog header off.

Three shapes reach us: RFC 5424 (``<14>1 2020-10-09T18:39:02-04:00 host app - - - msg``),
BSD / RFC 3164 (``<14>Nov 30 16:09:33 host msg``, the PRI sometimes stripped by a relay) and no
header at all (PAN-OS CSV written to a file, HTTPS/JSON forwarding). The header's host and time
are kept: they are the fallback when the body carries no device name or time.
"""

from __future__ import annotations

import re
from typing import NamedTuple

# RFC 5424: PRI VERSION SP TIMESTAMP SP HOSTNAME SP APP-NAME SP PROCID SP MSGID SP SD [SP MSG].
# Structured data is "-" or one or more [...] elements whose values may hold escaped "]".
_RFC5424 = re.compile(
    r"<\d{1,3}>\d{1,2} (?P<ts>\S+) (?P<host>\S+) \S+ \S+ \S+ "
    r"(?:-|(?:\[(?:[^\]\\\"]|\\.|\"(?:[^\"\\]|\\.)*\")*\])+)(?: |$)"
)
# RFC 3164: optional PRI, "Mmm dd hh:mm:ss" (some relays add a year or write ISO-8601), host.
_BSD = re.compile(
    r"(?:<\d{1,3}>)?"
    r"(?P<ts>[A-Z][a-z]{2} {1,2}\d{1,2}(?: \d{4})? \d{2}:\d{2}:\d{2}"
    r"|\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:?\d{2})?) "
    r"(?P<host>[^\s:]+):? "
)
# A relay may add a program tag ("panos[123]: ") between the host and the PAN-OS text.
_TAG = re.compile(r"[A-Za-z][\w.\-/]{0,47}(?:\[\d+\])?: ")
# Where PAN-OS text starts: CSV ("1,2024/..."), CEF, LEEF, JSON.
_BODY_START = re.compile(r"\d+,|CEF:|LEEF:|\{")


class Framed(NamedTuple):
    body: str
    host: str | None
    time: str | None


def decode(data: bytes | str) -> tuple[str, bool]:
    """Bytes -> text. Invalid UTF-8 is replaced, never fatal; the flag says it happened.

    A byte-order mark and the line terminator (LF or CRLF) are dropped."""
    replaced = False
    if isinstance(data, str):
        text = data
    else:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            text = data.decode("utf-8", "replace")
            replaced = True
    if text.startswith("\ufeff"):
        text = text[1:]
    if text.endswith(("\n", "\r")):
        text = text.rstrip("\r\n")
    return text, replaced


def split_header(text: str) -> Framed:
    """Separate the syslog header (if any) from the message body."""
    return Framed(*split(text))


def split(text: str) -> tuple[str, str | None, str | None]:
    """``split_header`` as a plain tuple (body, host, time), for the per-event path."""
    if not text:
        return text, None, None
    first = text[0]
    # Raw PAN-OS CSV ("1,..."), JSON, or anything that cannot open a header: no header.
    if first != "<" and not ("A" <= first <= "Z"):
        return text, None, None
    if first == "<":
        # RFC 5424 has its version digit right after the PRI: no need to try it on BSD.
        end = text.find(">", 2, 5)
        if end > 0 and text[end + 1 : end + 2].isdigit():
            m = _RFC5424.match(text)
            if m is not None:
                return text[m.end() :], m.group("host"), m.group("ts")
    elif text.startswith(("CEF:", "LEEF:")):
        return text, None, None
    m = _BSD.match(text)
    if m is None:
        if first == "<":
            # PRI only ("<14>1,2024/..."): drop it, nothing else to keep.
            end = text.find(">")
            return text[end + 1 :], None, None
        return text, None, None
    body = text[m.end() :]
    # A PAN-OS CSV body ("1,...") needs no look for a program tag.
    if not (body[1:2] == "," and "0" <= body[:1] <= "9") and not _BODY_START.match(body):
        t = _TAG.match(body)
        if t is not None:
            body = body[t.end() :]
    host, ts = m.group("host", "ts")
    return body, host, ts


def frame(data: bytes | str) -> tuple[Framed, bool]:
    """decode + split_header: the text body, header host and time, and the replaced flag."""
    text, replaced = decode(data)
    return Framed(*split(text)), replaced
