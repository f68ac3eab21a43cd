"""The demo traffic at any volume, for the report tests and ``bench/report.py``.

``deploy/demo/sample-traffic.log`` names the case and the expected cause of each session in a
comment before its lines. ``scaled`` repeats its lines, each copy with its own session ids and
sequence numbers (so every copy is a set of sessions of its own) and every timestamp of the
copy moved ``step_s`` seconds later than the copy before (certificate dates too, so that each
line keeps its meaning). ``expected_sessions`` says, from those comments and the session ids
of the lines, how many failed sessions of each cause a prefix of that stream holds.

The times are moved by templates made once per sample line: ``replay.shift_times`` does the
same with regular expressions per line, five times slower at 100,000 lines.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta

from pipeline.panos.layouts import layouts
from pipeline.resources import DEPLOY

_CASE = re.compile(r"^# ([\w-]+): (.+)$")
_TIMES = re.compile(
    r"(?P<panos>\d{4}/\d{2}/\d{2} \d{2}:\d{2}:\d{2})"
    r"|(?P<iso>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}[+-]\d{2}:\d{2})"
    r"|^(?P<pri><\d{1,3}>)(?P<bsd>[A-Z][a-z]{2} [ \d]\d \d{2}:\d{2}:\d{2})"
)
NOT_A_FAILURE = "not a failure"
SAMPLE = DEPLOY / "demo" / "sample-traffic.log"
# The BSD header has no year: the sample's.
_BSD_YEAR = 2026


def cases() -> list[tuple[str, str, list[str]]]:
    """(case, expected cause, lines) in file order; the trailing non-PAN-OS lines are a case
    of their own with no cause."""
    out: list[tuple[str, str, list[str]]] = []
    for raw in SAMPLE.read_text().splitlines():
        m = _CASE.match(raw)
        if m:
            out.append((m.group(1), m.group(2), []))
        elif raw.startswith("# not PAN-OS"):
            out.append(("not-panos", "", []))
        elif raw.strip() and not raw.startswith("#") and out:
            out[-1][2].append(raw)
    return out


def sample_lines() -> list[str]:
    return [line for _case, _cause, lines in cases() for line in lines]


def _sessions(lines: list[str]) -> list[list[int]]:
    """The sessions of a case: the positions of its lines, grouped by serial and session id
    (a TRAFFIC line and the DECRYPTION line of the same session are one session)."""
    fields = _fields()
    by_key: dict[tuple[str, str], list[int]] = {}
    for position, line in enumerate(lines):
        columns = _columns(line)
        if len(columns) > 4 and columns[3] in fields:
            index = fields[columns[3]][0]
            if index < len(columns):
                by_key.setdefault((columns[2], columns[index]), []).append(position)
    return list(by_key.values())


def expected_sessions(events: int) -> Counter[str]:
    """Failed sessions per cause in the first ``events`` lines of ``scaled``: each session of
    a case counts once for the cause its comment names."""
    per_copy = cases()
    size = sum(len(lines) for *_, lines in per_copy)
    counts: Counter[str] = Counter()
    whole, rest = divmod(events, size)
    for case, cause, lines in per_copy:
        if cause and cause != NOT_A_FAILURE:
            for session in _sessions(lines):
                counts[cause] += whole
                inside = sum(1 for position in session if position < rest)
                if 0 < inside < len(session):
                    raise ValueError(f"{events} events would cut a session of {case} in two")
                counts[cause] += inside == len(session)
        rest = max(0, rest - len(lines))
    return +counts


def _fields() -> dict[str, tuple[int, int]]:
    found = {}
    for log_type in ("DECRYPTION", "TRAFFIC"):
        names = layouts()[log_type].names
        found[log_type] = (names.index("sessionid"), names.index("seqno"))
    return found


def _columns(line: str) -> list[str]:
    """The line cut at the commas outside double quotes (each piece as written)."""
    out, start, quoted = [], 0, False
    for i, char in enumerate(line):
        if char == '"':
            quoted = not quoted
        elif char == "," and not quoted:
            out.append(line[start:i])
            start = i + 1
    out.append(line[start:])
    return out


class _Template:
    """One sample line cut at its session id, sequence number and timestamps."""

    def __init__(self, line: str, fields: dict[str, tuple[int, int]]) -> None:
        columns = _columns(line)
        self.numbers: dict[int, int] = {}
        if len(columns) > 4 and columns[3] in fields:
            for index in fields[columns[3]]:
                if index < len(columns) and columns[index].isdigit():
                    self.numbers[index] = int(columns[index])
        self.parts: list[str | tuple[str, datetime]] = []
        for index, column in enumerate(columns):
            if index:
                self.parts.append(",")
            if index in self.numbers:
                self.parts.append(("n", self.numbers[index]))  # type: ignore[arg-type]
                continue
            at = 0
            for m in _TIMES.finditer(column):
                self.parts.append(column[at : m.start()])
                if m.group("panos"):
                    when = datetime.strptime(m.group("panos"), "%Y/%m/%d %H:%M:%S")
                    self.parts.append(("panos", when))
                elif m.group("iso"):
                    self.parts.append(("iso", datetime.fromisoformat(m.group("iso"))))
                else:
                    when = datetime.strptime(f"{_BSD_YEAR} {m.group('bsd')}", "%Y %b %d %H:%M:%S")
                    self.parts.append(m.group("pri"))
                    self.parts.append(("bsd", when))
                at = m.end()
            self.parts.append(column[at:])

    def render(self, copy: int, shift: timedelta) -> str:
        out = []
        for part in self.parts:
            if isinstance(part, str):
                out.append(part)
                continue
            kind, value = part
            if kind == "n":
                out.append(str(value + copy * 100_000))  # type: ignore[operator]
            elif kind == "panos":
                out.append((value + shift).strftime("%Y/%m/%d %H:%M:%S"))  # type: ignore[operator]
            elif kind == "iso":
                out.append((value + shift).isoformat(timespec="milliseconds"))  # type: ignore[operator]
            else:
                when = value + shift  # type: ignore[operator]
                out.append(f"{when:%b} {when.day:>2} {when:%H:%M:%S}")
        return "".join(out)


def scaled(events: int, step_s: float = 30.0) -> Iterator[str]:
    """The first ``events`` lines of the demo traffic repeated, copy ``k`` with session ids and
    sequence numbers ``+ k * 100,000`` and timestamps ``k * step_s`` seconds later."""
    fields = _fields()
    templates = [_Template(line, fields) for line in sample_lines()]
    copy = 0
    produced = 0
    while produced < events:
        shift = timedelta(seconds=copy * step_s)
        for template in templates:
            if produced == events:
                return
            yield template.render(copy, shift)
            produced += 1
        copy += 1
