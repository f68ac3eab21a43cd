"""Structure-aware fuzzing of the parser: 100,000+ mutated real lines of every rendering (CSV
of each log type behind each header form, CEF, LEEF, JSON, ``show session id``), seeded and
deterministic. Every input must give a record whose ECS document serialises, or a ParseError
of a known type that is not "internal" (an unexpected exception: a parser bug).

The mutations follow each rendering's structure (columns, key/value pairs, JSON members,
labelled lines) and draw values from a pool of what breaks parsers: invalid and far-off
times, integers beyond 64 bits, IPv6 with zones, quotes, braces, escapes, other log types."""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import orjson
import pytest

from pipeline.ecs import document_id, to_ecs
from pipeline.errors import PARSE_ERROR_TYPES, ParseError
from pipeline.panos import parse_line
from pipeline.panos.reader import iter_events
from pipeline.syslog.framing import split

GOLDEN = Path(__file__).resolve().parent.parent / "golden"
INPUTS = 100_000
SEED = 20261127

VALUES = [
    "",
    "0",
    "-1",
    "65536",
    "99999999999999999999",
    str(2**63),
    str(2**64),
    "-" + str(2**63 + 1),
    "0x",
    "0xffffffffffffffffff",
    "0x8000000000000000",
    "1e309",
    "NaN",
    "2026/13/45 25:61:61",
    "2026/11/27 10:00:00",
    "1970/01/01 00:00:00",
    "2388/04/28 10:00:00",
    "2026-13-27T10:00:00Z",
    "2026-11-27T25:00:00+01:00",
    "2026-11-27T10:00:00.123-08:00",
    "2026-11-27T10:00:00+99:99",
    "9/16/19 10:00",
    "Mar 01 2021 20:35:54 GMT",
    "{{ time }}",
    "fe80::1%eth0",
    "2001:db8::1%",
    "::ffff:192.0.2.1",
    "192.0.2.256",
    "[2001:db8::1]",
    '"quoted,comma"',
    '"unclosed',
    '\\"escaped\\"',
    "{brace,list}",
    "{open",
    "None:None",
    "null",
    "a\\=b",
    "a\\|b",
    "line\\nbreak",
    "\u00e9\u4e2d\U0001f600",
    "\x00",
    "x" * 300,
    "TRAFFIC",
    "DECRYPTION",
    "HIP-MATCH",
    "START",
    "NOTATYPE",
    "decryption",
    "No Decrypt",
    "From: 192.0.2.7.",
    "https://www.example.test:99999/a?b",
    "www.example.test/login?a=1",
    "[",
    "http://[::1",
]
HEADERS = [
    "",
    "<14>Nov 27 10:00:01 fw-edge-01 ",
    "<14>Nov  7 10:00:01 ",
    "Nov 27 10:00:01 ",
    "<14>Nov 27 2026 10:00:01 fw-edge-01 ",
    "<14>2026-11-27T10:00:01.123+01:00 fw-edge-01 ",
    "<14>1 2026-11-27T10:00:01Z fw-edge-01 - - - - ",
    '<14>1 2026-11-27T10:00:01Z - - - - [a b="c"] ',
    "Nov 27 10:00:02 relay <14>Nov 27 10:00:01 fw-edge-01 ",
    "<13>Nov 27 10:00:02 relay tag[1]: ",
    "<14>",
]


def _seeds() -> dict[str, list[str]]:
    """Real lines from the golden corpus by rendering (the header taken off)."""
    found: dict[str, list[str]] = {"csv": [], "cef": [], "leef": [], "json": [], "session": []}
    for path in sorted(GOLDEN.glob("*.log")):
        for _, message in iter_events(path.read_bytes().splitlines()):
            text = message.decode("utf-8", "replace") if isinstance(message, bytes) else message
            if "\n" in text:
                found["session"].append(text)
                continue
            body = split(text)[0]
            if body.startswith("CEF:"):
                found["cef"].append(body)
            elif body.startswith("LEEF:"):
                found["leef"].append(body)
            elif body.startswith("{"):
                found["json"].append(body)
            elif body[:1].isdigit():
                found["csv"].append(body)
    return found


SEEDS = _seeds()


def _value(rng: random.Random) -> str:
    return rng.choice(VALUES)


def _edit_list(rng: random.Random, items: list[str], make: Callable[[list[str]], str]) -> list[str]:
    """One structural edit of a list of columns / pairs / lines; ``make`` gives a new item."""
    items = list(items)
    op = rng.randrange(7)
    i = rng.randrange(len(items)) if items else 0
    if not items or op == 0:
        items.insert(i, make(items))
    elif op == 1:
        del items[i]
    elif op == 2:
        items.insert(i, items[i])
    elif op == 3:
        j = rng.randrange(len(items))
        items[i], items[j] = items[j], items[i]
    elif op == 4:
        del items[rng.randrange(len(items)) :]
    else:
        items[i] = make(items)
    return items


def _pair(rng: random.Random, items: list[str]) -> str:
    """A key of the rendering with a value from the pool."""
    key = rng.choice(items).split("=")[0] if items else "k"
    return f"{key}={_value(rng)}"


SESSION_LABELS = ["proto", "source", "sport", "start time", "end-reason", "x", "c2s flow"]


def _mutate_csv(rng: random.Random, line: str) -> str:
    cols = line.split(",")
    for _ in range(rng.randint(1, 4)):
        cols = _edit_list(rng, cols, lambda _: _value(rng))
    return rng.choice(HEADERS) + ",".join(cols)


def _mutate_cef(rng: random.Random, line: str) -> str:
    head, _, ext = line.rpartition("|")
    pairs = ext.split(" ")
    for _ in range(rng.randint(1, 4)):
        pairs = _edit_list(rng, pairs, lambda items: _pair(rng, items))
    if rng.random() < 0.2:
        fields = head.split("|")
        fields[rng.randrange(len(fields))] = _value(rng)
        head = "|".join(fields)
    return rng.choice(HEADERS) + head + "|" + " ".join(pairs)


def _mutate_leef(rng: random.Random, line: str) -> str:
    delim = "\t" if "\t" in line else ("^" if "^" in line else "|")
    parts = line.split(delim)
    for _ in range(rng.randint(1, 4)):
        parts = _edit_list(rng, parts, lambda items: _pair(rng, items))
    return rng.choice(HEADERS) + delim.join(parts)


def _json_value(rng: random.Random) -> object:
    kind = rng.randrange(8)
    if kind == 0:
        return rng.choice([None, True, False, 0, -1, 2**63, 2**64 - 1, 1.5, 1e300])
    if kind == 1:
        return {"nested": _value(rng)}
    if kind == 2:
        return [_value(rng)]
    return _value(rng)


def _mutate_json(rng: random.Random, line: str) -> str:
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError:
        return line
    keys = list(obj)
    for _ in range(rng.randint(1, 4)):
        key = rng.choice(keys)
        op = rng.randrange(3)
        if op == 0:
            obj.pop(key, None)
        else:
            obj[key] = _json_value(rng)
    try:
        text = orjson.dumps(obj).decode()
    except TypeError:  # an integer orjson refuses: write it by hand, as a sender would
        text = line
    if rng.random() < 0.1:
        text = text.replace('"SequenceNo":', '"SequenceNo":184467440737095516161,"x":', 1)
    return rng.choice(HEADERS[:6]) + text


def _mutate_session(rng: random.Random, text: str) -> str:
    lines = text.split("\n")
    for _ in range(rng.randint(1, 4)):
        lines = _edit_list(
            rng, lines, lambda _: f"        {rng.choice(SESSION_LABELS)} : {_value(rng)}"
        )
    return "\n".join(lines)


def _mutate_bytes(rng: random.Random, data: bytes) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        if not out:
            break
        pos = rng.randrange(len(out))
        op = rng.randrange(3)
        if op == 0:
            out[pos] = rng.randrange(256)
        elif op == 1:
            del out[pos]
        else:
            out[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 4)))
    return bytes(out)


MUTATORS: dict[str, Callable[[random.Random, str], str]] = {
    "csv": _mutate_csv,
    "cef": _mutate_cef,
    "leef": _mutate_leef,
    "json": _mutate_json,
    "session": _mutate_session,
}
# Share of the inputs per rendering: CSV carries every log type and header form.
WEIGHTS = {"csv": 60, "cef": 10, "leef": 10, "json": 10, "session": 10}


def fuzz_inputs(count: int, seed: int = SEED) -> Iterator[tuple[str, bytes]]:
    rng = random.Random(seed)
    formats = [f for f, w in WEIGHTS.items() for _ in range(w) if SEEDS[f]]
    for _ in range(count):
        fmt = rng.choice(formats)
        text = MUTATORS[fmt](rng, rng.choice(SEEDS[fmt]))
        data = text.encode("utf-8", "surrogatepass")
        if rng.random() < 0.1:
            data = _mutate_bytes(rng, data)
        yield fmt, data


def test_seeds_cover_every_rendering_and_log_type() -> None:
    assert all(SEEDS.values()), {k: len(v) for k, v in SEEDS.items()}
    types = {line.split(",")[3].upper() for line in SEEDS["csv"] if line.count(",") > 3}
    assert {
        "TRAFFIC",
        "THREAT",
        "DECRYPTION",
        "SYSTEM",
        "CONFIG",
        "HIPMATCH",
        "GLOBALPROTECT",
        "USERID",
        "AUTHENTICATION",
        "IPTAG",
        "CORRELATION",
        "START",
        "GTP",
        "SCTP",
    } <= types


def test_the_inputs_are_deterministic() -> None:
    first = list(fuzz_inputs(200))
    assert first == list(fuzz_inputs(200))
    assert len({data for _, data in first}) > 190


@pytest.mark.slow
def test_fuzz_parser() -> None:
    outcomes: Counter[str] = Counter()
    started = time.perf_counter()
    for fmt, data in fuzz_inputs(INPUTS):
        try:
            record = parse_line(data)
        except ParseError as exc:
            assert exc.error_type in PARSE_ERROR_TYPES, (exc.error_type, data)
            assert exc.error_type != "internal", (exc.message, data)
            outcomes[f"{fmt}:{exc.error_type}"] += 1
            continue
        assert record.get("type"), data
        orjson.dumps(to_ecs(record))
        assert document_id(record)
        outcomes[f"{fmt}:record"] += 1
    elapsed = time.perf_counter() - started
    assert sum(outcomes.values()) == INPUTS
    # Both answers must occur for every rendering, or the mutations miss the parser.
    for fmt in WEIGHTS:
        assert outcomes[f"{fmt}:record"] > 0, outcomes
        assert sum(n for k, n in outcomes.items() if k.startswith(fmt)) > outcomes[f"{fmt}:record"]
    print(f"fuzz: {INPUTS} inputs in {elapsed:.1f} s: {dict(sorted(outcomes.items()))}")
