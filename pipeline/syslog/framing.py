"""Syslog framing: turn the bytes of one message into text and take the syslog header off.

Three shapes reach us: RFC 5424 (``<14>1 2020-10-09T18:39:02-04:00 host app - - - msg``),
BSD / RFC 3164 (``<14>Nov 30 16:09:33 host msg``, the PRI sometimes stripped by a relay, the
host sometimes absent, the time sometimes with a year or in RFC 3339) and no header at all
(PAN-OS CSV written to a file, HTTPS/JSON forwarding). The header's host and time are kept:
they are the fallback when the body carries no device name or time.

Header fields are never counted to find the body: a CSV record is recognised by its structure
(FUTURE_USE, receive time, serial, log type), so a missing host name or a relay's extra tokens
cannot shift the record's columns.
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
# RFC 3164: optional PRI, then "Mmm dd hh:mm:ss" (some relays add a year; rsyslog's
# RSYSLOG_ForwardFormat and similar templates write RFC 3339), then the host name. The host is
# optional (relays and some firewalls send none) and never holds a comma, so a CSV record right
# after the time ("1,2024/11/03 ...") is not taken for the host.
_BSD = re.compile(
    r"(?:<\d{1,3}>)?"
    r"(?P<ts>[A-Z][a-z]{2} {1,2}\d{1,2}(?: \d{4})? \d{2}:\d{2}:\d{2}"
    r"|\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:?\d{2})?) "
    r"(?:(?P<host>[^\s:,]+):? )?"
)
# A relay may add a program tag ("panos[123]: ") between the host and the PAN-OS text.
_TAG = re.compile(r"[A-Za-z][\w.\-/]{0,47}(?:\[\d+\])?: ")
# The start of a PAN-OS CSV record, found by its structure: FUTURE_USE, receive time, serial
# (may be empty), log type. Receive times are "YYYY/MM/DD hh:mm:ss" (some exports write
# "M/D/YY hh:mm"; Strata Logging Service's CSV forwarding writes ISO 8601 and a number of its
# own in FUTURE_USE).
_RECORD = re.compile(
    r"\d{1,12},(?:(?:\d{4}/\d{1,2}/\d{1,2}|\d{1,2}/\d{1,2}/\d{2,4}) \d{1,2}:\d{2}(?::\d{2})?"
    r"|\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:?\d{2})?),"
    r"[^,\s]*,[A-Z][A-Z0-9_-]{1,31},"
)
# A relay that forwards the whole syslog message puts its own header before the firewall's
# ("Apr 22 08:17:35 relay <14>Apr 22 08:17:36 Panorama 1,2019/04/22 ..."): the header nearest
# the record is the firewall's.
_INNER_PRI = re.compile(r"<\d{1,3}>")
# How far into a message a PAN-OS record is looked for behind an unknown prefix.
_SEARCH_LIMIT = 512
_OTHER_STARTS = ("CEF:", "LEEF:", "{")


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
    if "0" <= first <= "9":
        # Raw PAN-OS CSV ("1,2024/..."), the common case of files and forwarders.
        if text[1:2] == "," or text[2:3] == ",":
            return text, None, None
        # An RFC 3339 time without PRI starts a header too.
        if text[4:5] != "-":
            return _after_prefix(text, 0, None, None)
    elif first != "<" and not ("A" <= first <= "Z"):
        return _after_prefix(text, 0, None, None)
    elif first == "<":
        # RFC 5424 has its version digit right after the PRI: no need to try it on BSD.
        end = text.find(">", 2, 5)
        if end > 0 and text[end + 1 : end + 2].isdigit():
            m = _RFC5424.match(text)
            if m is not None:
                host = m.group("host")
                # "-" is RFC 5424's NILVALUE: no host name.
                return _after_prefix(text, m.end(), None if host == "-" else host, m.group("ts"))
    elif text.startswith(_OTHER_STARTS):
        return text, None, None
    m = _BSD.match(text)
    if m is None:
        if first == "<":
            # PRI only ("<14>1,2024/..."): drop it, nothing else to keep.
            end = text.find(">")
            if end > 0:
                return _after_prefix(text, end + 1, None, None)
        return _after_prefix(text, 0, None, None)
    host, ts = m.group("host", "ts")
    at = m.end()
    # The common case: a PAN-OS CSV record right after the header.
    if text[at + 1 : at + 2] == "," and "0" <= text[at : at + 1] <= "9":
        return text[at:], host, ts
    if host is not None and host[0] == "{":
        # JSON right after the time ('{"k": ...' looks like a host followed by a space)
        return _after_prefix(text, m.start("host"), None, ts)
    t = _TAG.match(text, at)
    return _after_prefix(text, at, host, ts, tag=t)


def _starts_record(text: str, at: int) -> bool:
    """Whether a PAN-OS record (CSV by structure, CEF, LEEF, JSON) starts at ``at``."""
    c = text[at : at + 1]
    if "0" <= c <= "9":
        return _RECORD.match(text, at) is not None
    return c in ("C", "L", "{") and text.startswith(_OTHER_STARTS, at)


def _after_prefix(
    text: str, at: int, host: str | None, ts: str | None, *, tag: re.Match[str] | None = None
) -> tuple[str, str | None, str | None]:
    """The body after header fields that did not end at a record: a CSV record anywhere in
    the first ``_SEARCH_LIMIT`` characters starts the body (whatever a relay put before it);
    otherwise the text after the program tag, if any (CLI output, text that is not PAN-OS)."""
    if _starts_record(text, at):
        return text[at:], host, ts
    found = _RECORD.search(text, at, at + _SEARCH_LIMIT + 80)
    if found is not None:
        start = found.start()
        inner = text.rfind("<", at, start)
        if inner >= 0 and _INNER_PRI.match(text, inner):
            body, inner_host, inner_ts = split(text[inner:])
            if len(body) == len(text) - start:
                return body, inner_host or host, inner_ts or ts
        return text[start:], host, ts
    if tag is not None:
        at = tag.end()
    return text[at:], host, ts


def frame(data: bytes | str) -> tuple[Framed, bool]:
    """decode + split_header: the text body, header host and time, and the replaced flag."""
    text, replaced = decode(data)
    return Framed(*split(text)), replaced
