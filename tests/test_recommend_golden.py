"""Golden recommendation cases: ``tests/golden/recommend/<case>.log`` through the same path as
``decryptscope recommend FILE`` (the chain, then ``pipeline.recommend``) must give
``<case>.expected.json``, the recommendations section as JSON (rewritten by ``--regen-golden``;
review the diff against the case's lines).

Each case also says in its own header what it must produce, written by hand from its lines:
``# expect: <kind> <subject>`` for a recommendation, ``# expect: held <destination>`` for a
destination short of the exclusion gate, ``# expect: declined <destination> <cause>`` for one
never excluded. The cases sit just below and just above each gate."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from pipeline.commands import recommend
from pipeline.settings import Settings

GOLDEN = Path(__file__).parent / "golden" / "recommend"
CASES = sorted(GOLDEN.glob("*.log"))
_JSON = orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS


def section_of(path: Path) -> dict:
    return recommend.from_files([str(path)], Settings())


def expectations(path: Path) -> set[str]:
    prefix = "# expect: "
    lines = path.read_text(encoding="utf-8").splitlines()
    return {line[len(prefix) :].strip() for line in lines if line.startswith(prefix)}


def summary(section: dict) -> set[str]:
    out = {f"{r['kind']} {r['subject']}" for r in section["recommendations"]}
    out |= {f"held {h['subject']}" for h in section["held"]}
    out |= {f"declined {d['subject']} {d['cause']}" for d in section["declined"]}
    return out


@pytest.mark.parametrize("case", CASES, ids=[p.stem for p in CASES])
def test_golden_recommendations(case: Path, request: pytest.FixtureRequest) -> None:
    actual = orjson.loads(orjson.dumps(section_of(case)))
    expected_path = case.with_name(case.stem + ".expected.json")
    if request.config.getoption("--regen-golden", default=False):
        expected_path.write_bytes(orjson.dumps(actual, option=_JSON) + b"\n")
    assert expected_path.exists(), f"no {expected_path.name}: run with --regen-golden and review it"
    assert actual == orjson.loads(expected_path.read_bytes())


@pytest.mark.parametrize("case", CASES, ids=[p.stem for p in CASES])
def test_each_case_gives_what_its_header_says(case: Path) -> None:
    wanted = expectations(case)
    assert wanted, f"{case.name} says nothing about what it expects"
    assert summary(section_of(case)) == wanted


def test_every_kind_and_the_gates_have_cases() -> None:
    said = set().union(*(expectations(p) for p in CASES))
    kinds = {line.split(" ", 1)[0] for line in said}
    assert {"exclusion", "trust-chain", "forward-trust-ca", "profile", "inbound"} <= kinds
    assert {"held", "declined"} <= kinds
    names = {p.stem for p in CASES}
    for gate in ("failures", "clients", "span"):
        assert f"exclusion-below-{gate}" in names
    assert "exclusion-at-gate" in names
