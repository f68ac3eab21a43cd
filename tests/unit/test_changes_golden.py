"""Golden change points: ``tests/golden/changes/<case>.log`` (SYSTEM and CONFIG lines, each
case naming its sources: the vendor's System Log Reference and public samples) beside
``<case>.expected.json``, the change points those lines show, written from the sources. The
lines go through the chain as the worker and ``analyze`` run it; every change document must
validate against the ECS event schema."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import orjson
import pytest

from pipeline import changes
from pipeline.commands.offline import chain_for, run_lines, sessions_for
from pipeline.resources import SCHEMAS
from pipeline.settings import Settings

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "changes"
CASES = sorted(GOLDEN.glob("*.log"))
_SCHEMA = orjson.loads((SCHEMAS / "ecs" / "event.schema.json").read_bytes())
_VALIDATOR = jsonschema.validators.validator_for(_SCHEMA)(
    _SCHEMA, format_checker=jsonschema.FormatChecker()
)


def found(path: Path) -> tuple[list[dict], list[dict]]:
    """(the change points of the case as plain values, their documents)."""
    settings = Settings()
    out, docs = [], []
    lines = path.read_bytes().splitlines()
    for batch in run_lines(lines, chain_for(settings), sessions_for(settings)):
        assert not batch.result.dead_letters, batch.result.dead_letters
        for change in batch.result.changes:
            item = {
                "kind": change.kind,
                "rule": change.rule,
                "firewall": change.firewall,
                "name": change.name,
                "time": change.time.isoformat(timespec="milliseconds"),
                "summary": change.summary,
                "from": change.version_from,
                "to": change.version_to,
                "user": change.user,
                "object": change.object,
                "alert": change.alert,
            }
            out.append({k: v for k, v in item.items() if v})
        docs += [orjson.loads(d.source) for d in batch.result.documents if d.change is not None]
    return out, docs


@pytest.mark.parametrize("case", CASES, ids=[p.stem for p in CASES])
def test_golden_change_points(case: Path) -> None:
    expected = json.loads(case.with_suffix(".expected.json").read_text())
    actual, docs = found(case)
    assert actual == expected
    assert len(docs) == len(expected)
    for doc in docs:
        _VALIDATOR.validate(doc)
        assert doc["event"]["dataset"] == changes.DATASET
        assert doc["decryptscope"]["change"]["kind"] == doc["event"]["action"]


def test_every_case_names_its_source_and_uses_documentation_addresses() -> None:
    assert len(CASES) >= 5
    for path in CASES:
        text = path.read_text(encoding="utf-8")
        assert "source" in "".join(line for line in text.splitlines()[:6] if line.startswith("#"))
        if path.stem == "system-json-samples":
            continue  # public samples, copied unchanged
        copied = False
        for line in text.splitlines():
            if line.startswith("#"):
                copied = "copied unchanged" in line
                continue
            if copied:  # a public sample line, as published
                continue
            # addresses in descriptions: documentation ranges only (RFC 5737)
            for word in line.replace(",", " ").replace('"', " ").split():
                parts = word.split(".")
                if len(parts) == 4 and all(p.isdigit() for p in parts):
                    assert word.startswith(("192.0.2.", "198.51.100.", "203.0.113.")), word


def test_every_kind_a_rule_detects_has_a_golden_case() -> None:
    rules = changes.rules()
    covered = {
        item["kind"]
        for path in CASES
        for item in json.loads(path.with_suffix(".expected.json").read_text())
    }
    detected = {kind for kind, spec in rules.kinds.items() if spec.detected}
    # antivirus and content reverts have no public line and no complete documented text
    assert detected - covered <= {"antivirus", "content-revert"}
