"""Whatever arrives, the parser returns a record or raises ParseError - nothing else - and every
record converts to an ECS document that serialises. An unexpected exception (error type
"internal") fails these tests: it is a parser bug, not bad input.

Valid lines behind every syslog header form, and behind mutated headers, give the record of
the bare line or a dead letter: never a record read from shifted columns."""

from __future__ import annotations

from pathlib import Path

import orjson
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from pipeline.ecs import document_id, to_ecs
from pipeline.errors import PARSE_ERROR_TYPES, ParseError
from pipeline.panos import parse_line
from pipeline.syslog.framing import split

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


def _record_or_refusal(data: bytes | str) -> dict | None:
    try:
        record = parse_line(data)
    except ParseError as exc:
        assert exc.error_type in PARSE_ERROR_TYPES
        assert exc.error_type != "internal", exc.message
        return None
    assert isinstance(record, dict) and record.get("type")
    orjson.dumps(to_ecs(record))
    assert document_id(record)
    return record


def _check(data: bytes | str) -> None:
    _record_or_refusal(data)


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


# --- header forms ------------------------------------------------------------------------------


def _csv_bodies() -> list[tuple[str, dict]]:
    """(body, record fields) of every golden CSV line that parses: the bare records."""
    out = []
    for line in SEEDS:
        body = split(line.decode("utf-8", "replace"))[0]
        if not body[:1].isdigit():
            continue
        try:
            record = parse_line(body)
        except ParseError:
            continue
        out.append((body, _fields(record)))
    return out


def _fields(record: dict) -> dict:
    return {k: v for k, v in record.items() if not k.startswith("_")}


BODIES = _csv_bodies()
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
hosts = st.from_regex(r"[A-Za-z][A-Za-z0-9.\-]{0,30}", fullmatch=True)
pris = st.one_of(st.just(""), st.integers(0, 191).map(lambda n: f"<{n}>"))


@st.composite
def bsd_time(draw: st.DrawFn) -> str:
    day = draw(st.integers(1, 31))
    hour, minute, second = (
        draw(st.integers(0, 23)),
        draw(st.integers(0, 59)),
        draw(st.integers(0, 59)),
    )
    clock = f"{hour:02d}:{minute:02d}:{second:02d}"
    year = draw(st.one_of(st.just(""), st.integers(1990, 2099).map(lambda y: f" {y}")))
    return f"{draw(st.sampled_from(MONTHS))} {day:2d}{year} {clock}"


@st.composite
def iso_time(draw: st.DrawFn) -> str:
    frac = draw(st.sampled_from(["", ".5", ".123", ".123456"]))
    zone = draw(st.sampled_from(["Z", "+00:00", "-08:00", "+05:30", "+0100"]))
    month, day = draw(st.integers(1, 12)), draw(st.integers(1, 28))
    return f"2026-{month:02d}-{day:02d}T10:00:01{frac}{zone}"


@st.composite
def header(draw: st.DrawFn) -> tuple[str, str | None]:
    """A syslog header as firewalls, Panorama and relays write it, and the host it names."""
    form = draw(st.sampled_from(["bsd", "bsd-no-host", "iso", "rfc5424", "relay", "tag"]))
    host = draw(hosts)
    if form == "bsd":
        return f"{draw(pris)}{draw(bsd_time())} {host} ", host
    if form == "bsd-no-host":
        return f"{draw(pris)}{draw(bsd_time())} ", None
    if form == "iso":
        return f"{draw(pris)}{draw(iso_time())} {host} ", host
    if form == "rfc5424":
        nil = draw(st.booleans())
        sd = draw(st.sampled_from(["-", '[meta sequenceId="7"]', '[x a="]b\\"c"][y]']))
        name = "-" if nil else host
        head = f"<{draw(st.integers(0, 191))}>1 {draw(iso_time())} {name} panos - - {sd} "
        return head, None if nil else host
    if form == "relay":
        relay = draw(hosts)
        return f"{draw(bsd_time())} {relay} <14>{draw(bsd_time())} {host} ", host
    return f"<13>{draw(bsd_time())} {host} {draw(hosts)}[{draw(st.integers(1, 9999))}]: ", host


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(BODIES), header())
def test_every_header_form_gives_the_bare_record(
    body_fields: tuple[str, dict], head: tuple[str, str | None]
) -> None:
    body, fields = body_fields
    text, host = head
    record = _record_or_refusal(text + body)
    assert record is not None
    assert _fields(record) == fields
    assert record.get("_host") == host
    assert record["_original"] == body


@settings(max_examples=600, deadline=None)
@given(st.sampled_from(BODIES), header(), st.data())
def test_a_mutated_header_gives_the_bare_record_or_a_dead_letter(
    body_fields: tuple[str, dict], head: tuple[str, str | None], data: st.DataObject
) -> None:
    body, fields = body_fields
    text = head[0]
    assume(text)
    edits = data.draw(st.integers(min_value=1, max_value=4))
    for _ in range(edits):
        pos = data.draw(st.integers(min_value=0, max_value=len(text)))
        junk = data.draw(st.text(alphabet=st.characters(codec="utf-8"), max_size=6))
        cut = data.draw(st.integers(min_value=0, max_value=3))
        text = text[:pos] + junk + text[pos + cut :]
    record = _record_or_refusal(text + body)
    if record is not None:
        assert _fields(record) == fields
