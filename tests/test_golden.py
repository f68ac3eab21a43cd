"""Golden tests: the parsing spec. Each ``tests/golden/<case>.log`` (real samples, each with
its source on its first line, and composed cases using documentation IP ranges) is parsed
message by message; the records and their ECS documents must equal
``<case>.expected.json``. Every ECS document must also validate against
``schemas/ecs/event.schema.json``.

The documents are built without a diagnosis (``decryptscope.failure`` false, and the mode of
decryption events): the diagnosis has its own golden tests in ``tests/golden/diagnosis/``."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import jsonschema
import orjson
import pytest

from pipeline.ecs import document_id, to_ecs
from pipeline.errors import PARSE_ERROR_TYPES, ParseError
from pipeline.panos import iter_records
from pipeline.resources import SCHEMAS

GOLDEN = Path(__file__).parent / "golden"
CASES = sorted(GOLDEN.glob("*.log"))
# Firewall time zones of the cases: the Elastic sample was recorded at UTC-8.
TIMEZONES = {"007051000184334": "-08:00", "013201000001": "Europe/Paris"}
# A record with no time at all (a "show session id" fragment) is stamped with when it was read.
READ_AT = datetime(2026, 1, 1, tzinfo=UTC)
_TIME_KEYS = ("high_res_timestamp", "time_generated", "receive_time", "start")
_JSON = orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS


def _validator() -> jsonschema.protocols.Validator:
    schema = orjson.loads((SCHEMAS / "ecs" / "event.schema.json").read_bytes())
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


VALIDATOR = _validator()


def run_case(path: Path) -> list[dict]:
    out: list[dict] = []
    with path.open("rb") as fh:
        for number, result in iter_records(fh, tz_for=TIMEZONES.get):
            if isinstance(result, ParseError):
                assert result.error_type in PARSE_ERROR_TYPES
                out.append(
                    {
                        "line": number,
                        "error": {"type": result.error_type, "message": result.message},
                    }
                )
                continue
            record = dict(result)
            if not any(k in record for k in _TIME_KEYS):
                record["_received_at"] = READ_AT
            doc = to_ecs(record)
            out.append({"line": number, "id": document_id(record), "record": record, "ecs": doc})
    # Through JSON: datetimes become ISO-8601 text, as in the expected files.
    return orjson.loads(orjson.dumps(out, option=_JSON))


@pytest.mark.parametrize("case", CASES, ids=[p.stem for p in CASES])
def test_golden(case: Path, request: pytest.FixtureRequest) -> None:
    actual = run_case(case)
    expected_path = case.with_name(case.stem + ".expected.json")
    if request.config.getoption("--regen-golden", default=False):
        expected_path.write_bytes(orjson.dumps(actual, option=_JSON) + b"\n")
    assert expected_path.exists(), f"no {expected_path.name}: run with --regen-golden and review it"
    expected = orjson.loads(expected_path.read_bytes())
    assert actual == expected
    for item in actual:
        if "ecs" in item:
            VALIDATOR.validate(item["ecs"])


def test_every_sample_has_a_case() -> None:
    """Each real sample file (not the composed cases) names its source in its heading comment."""
    samples = [p for p in CASES if p.name.startswith("sample-")]
    assert len(samples) >= 13
    for path in samples:
        lines = path.read_text(encoding="utf-8").splitlines()
        heading = [line for line in lines[:4] if line.startswith("#")]
        assert any("source" in line for line in heading), path.name
