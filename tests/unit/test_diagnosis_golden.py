"""Golden diagnosis cases: ``tests/golden/diagnosis/<case>.log`` (log lines of one session, or
a ``show session id`` output) beside ``<case>.expected.json`` (cause and mode; for a record that
is not a failure, cause null and the mode of a decryption event, or null when it is none).
The first record is diagnosed with the others as its session's related records."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.diagnosis import classifier_for, classify, event_mode
from pipeline.panos import parse_text as read_records

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "diagnosis"
CASES = sorted(GOLDEN.glob("*.log"))


def _load(path: Path):
    records = read_records(path.read_text(encoding="utf-8"))
    expected = json.loads(path.with_suffix(".expected.json").read_text(encoding="utf-8"))
    return records, expected


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_golden_case(path):
    records, expected = _load(path)
    diagnosis = classify(records[0], records[1:])
    if expected["cause"] is None:
        assert diagnosis is None, f"{path.name}: expected no failure, got {diagnosis}"
        assert event_mode(records[0], records[1:]) == expected["mode"]
        return
    assert diagnosis is not None, f"{path.name}: expected {expected['cause']}"
    assert diagnosis.cause == expected["cause"]
    assert diagnosis.mode == expected["mode"]
    assert diagnosis.evidence


def test_every_cause_has_a_golden_case():
    covered = {_load(p)[1]["cause"] for p in CASES}
    missing = set(classifier_for(None).catalogue.causes) - covered
    assert not missing, f"causes without a golden case: {sorted(missing)}"


def test_non_failure_cases_exist():
    assert sum(1 for p in CASES if _load(p)[1]["cause"] is None) >= 6


def test_every_golden_log_uses_the_kb_or_documentation_addresses():
    allowed = ("192.0.2.", "198.51.100.", "203.0.113.")
    kb = {"200.0.0.1", "100.0.0.1", "192.168.1.100"}  # quoted verbatim from KB 83656
    for path in CASES:
        for record in read_records(path.read_text(encoding="utf-8")):
            for key in ("src", "dst", "natsrc", "natdst"):
                ip = record.get(key)
                if ip and ip != "0.0.0.0":
                    assert ip.startswith(allowed) or ip in kb, f"{path.name}: {key}={ip}"
