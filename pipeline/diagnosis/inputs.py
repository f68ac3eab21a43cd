"""Text given to ``decryptscope diagnose`` -> records: one or more ``show session id``
outputs (copied from the CLI, blank lines and all) or PAN-OS log lines."""

from __future__ import annotations

import re
from collections.abc import Callable
from itertools import pairwise
from typing import Any

from pipeline.errors import NotRecognisedError, ParseError

# An output starts at the CLI prompt or the "Session <id>" line; a copied tail is recognised
# by its tracker/end-reason lines.
_PROMPT = re.compile(r"^\s*(?:\S*[>#]\s*)?show session id \d+\s*$", re.MULTILINE)
_SESSION_MARK = re.compile(
    r"^\s*(?:Session\s+\d+|tracker stage firewall\s*:.*|end-reason\s*:.*|[cs]2[sc] flow:)\s*$",
    re.MULTILINE,
)


def _session_outputs(segments: list[str]) -> list[str]:
    """Each output: comment lines separate outputs, and so does every CLI prompt."""
    outputs = []
    for text in segments:
        starts = [m.start() for m in _PROMPT.finditer(text)]
        bounds = [0, *starts[1:], len(text)] if starts else [0, len(text)]
        outputs.extend(text[a:b] for a, b in pairwise(bounds))
    return [o for o in outputs if o.strip()]


def _segments(text: str) -> list[str]:
    segments: list[list[str]] = [[]]
    for line in text.splitlines():
        if line.lstrip().startswith("#"):
            segments.append([])
        else:
            segments[-1].append(line)
    return ["\n".join(lines) for lines in segments]


def read_records(
    text: str, *, default_tz: str = "UTC", tz_for: Callable[[str], str] | None = None
) -> list[dict[str, Any]]:
    """The records in ``text``; NotRecognisedError when nothing in it is a PAN-OS log line or
    a ``show session id`` output."""
    from pipeline.panos import parse_line

    segments = _segments(text)
    body = "\n".join(segments)
    if not body.strip():
        raise NotRecognisedError(
            "empty input: give a PAN-OS log line or a 'show session id' output"
        )
    records: list[dict[str, Any]] = []
    first_error: ParseError | None = None
    if _SESSION_MARK.search(body) or _PROMPT.search(body):
        for chunk in _session_outputs(segments):
            try:
                records.append(parse_line(chunk.strip("\n"), default_tz=default_tz, tz_for=tz_for))
            except ParseError as exc:
                first_error = first_error or exc
    else:
        for line in body.splitlines():
            if not line.strip():
                continue
            try:
                records.append(parse_line(line, default_tz=default_tz, tz_for=tz_for))
            except ParseError as exc:
                first_error = first_error or exc
    if not records:
        detail = f" ({first_error.message})" if first_error else ""
        raise NotRecognisedError(
            "not recognised: the input is neither a PAN-OS log line nor a 'show session id' "
            f"output{detail}"
        )
    return records
