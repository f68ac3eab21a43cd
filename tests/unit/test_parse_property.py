"""Whatever arrives, the parser returns a record or raises ParseError - nothing else - and every
record converts to an ECS document that serialises."""

from __future__ import annotations

from pathlib import Path

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.ecs import document_id, to_ecs
from pipeline.errors import PARSE_ERROR_TYPES, ParseError
from pipeline.panos import parse_line

GOLDEN = Path(__file__).resolve().parent.parent / "golden"
SEEDS = [
    line
    for path in sorted(GOLDEN.glob("*.log"))
    for line in path.read_bytes().splitlines()
    if line and not line.startswith(b"#")
]
PREFIXES = [
    b"",
    b"<14>",
    b"<14>Nov 27 10:00:01 fw ",
    b"<14>1 2026-11-27T10:00:01Z fw - - - - ",
    b"CEF:0|",
    b"LEEF:1.0|",
    b"{",
    b"Session 1\n",
]


def _check(data: bytes | str) -> None:
    try:
        record = parse_line(data)
    except ParseError as exc:
        assert exc.error_type in PARSE_ERROR_TYPES
        return
    assert isinstance(record, dict) and record.get("type")
    orjson.dumps(to_ecs(record))
    assert document_id(record)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2048))
def test_random_bytes(data: bytes) -> None:
    _check(data)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(PREFIXES), st.text(max_size=1024))
def test_random_text_after_real_prefixes(prefix: bytes, text: str) -> None:
    _check(prefix + text.encode("utf-8", "surrogatepass"))


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(SEEDS), st.data())
def test_truncated_and_mutated_real_lines(line: bytes, data: st.DataObject) -> None:
    cut = data.draw(st.integers(min_value=0, max_value=len(line)))
    _check(line[:cut])
    pos = data.draw(st.integers(min_value=0, max_value=max(len(line) - 1, 0)))
    junk = data.draw(st.binary(min_size=1, max_size=8))
    _check(line[:pos] + junk + line[pos + 1 :])


@settings(max_examples=20, deadline=None)
@given(st.sampled_from(SEEDS), st.integers(min_value=1, max_value=400))
def test_huge_lines(line: bytes, repeat: int) -> None:
    _check(line + b"," * repeat * 700)
    _check(line * repeat)
