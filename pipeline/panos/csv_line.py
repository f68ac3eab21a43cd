"""Quote-aware splitting of a PAN-OS CSV log body into columns.

Most lines hold no quote and no brace and are split with ``str.split``. Lines with a quoted
column (Application Characteristic, SYSTEM description) or a brace-wrapped list (Link
Switches ``{a,b}``) take a regex scanner. A backslash-escaped quote (``\\"``, left by relays that
JSON-escape the message) counts as a quote."""

from __future__ import annotations

import re

# One column: a "quoted" value ("" is a literal quote), a {brace,list}, or plain text. A quote
# or brace that does not close right before a comma is plain text (never an error).
_FIELD = re.compile(r'"((?:[^"]|"")*)"(?=,|$)|(\{[^{}]*\})(?=,|$)|([^,]*)', re.DOTALL)


def split_csv(body: str) -> list[str]:
    if '"' not in body:
        if "{" not in body:
            return body.split(",")
    elif "{" not in body:
        row = _split_quoted(body)
        if row is not None:
            return row
    return _split_slow(body.replace('\\"', '"') if '\\"' in body else body)


def _split_quoted(body: str) -> list[str] | None:
    """Well-formed quoting (each quoted column is a whole column, no "" escape, no
    backslash-escaped quote) with ``str.split``; None sends the line to the scanner. (Looking
    for ``\\"`` only at the quotes costs less than a search of the whole line.)"""
    parts = body.split('"')
    if len(parts) % 2 == 0:
        return None
    out = parts[0].split(",")
    for i in range(1, len(parts), 2):
        rest = parts[i + 1].split(",")
        # The quote must open a column and close right before a comma (or the end).
        if out[-1] or rest[0] or parts[i].endswith("\\"):
            return None
        # rest[0] is the empty text before the comma: the quoted value takes its place.
        rest[0] = parts[i]
        out.pop()
        out += rest
    return out


def _split_slow(body: str) -> list[str]:
    out: list[str] = []
    append = out.append
    match = _FIELD.match
    pos = 0
    end = len(body)
    while True:
        m = match(body, pos)
        quoted, braced, plain = m.groups()
        if quoted is not None:
            append(quoted.replace('""', '"') if '""' in quoted else quoted)
        elif braced is not None:
            append(braced)
        else:
            append(plain)
        pos = m.end()
        if pos >= end:
            return out
        # The scanner stops only at a comma (or the end): step over it.
        pos += 1
        if pos == end:
            append("")
            return out
