"""Dead letters (pipeline.sinks.deadletter): the contract's fields, binary-safe originals."""

from __future__ import annotations

import orjson

from pipeline import __version__
from pipeline.errors import ParseError
from pipeline.sinks import deadletter


def test_from_error_carries_stage_type_and_source() -> None:
    error = ParseError("only 3 columns", error_type="too_few_columns")
    letter = deadletter.from_error(b"<14>x 1,2,3", error, topic="t", partition=2, offset=41)
    assert letter["original"] == "<14>x 1,2,3"
    assert (letter["stage"], letter["error_type"]) == ("parse", "too_few_columns")
    assert (letter["topic"], letter["partition"], letter["offset"]) == ("t", 2, 41)
    assert letter["message"] == "only 3 columns"
    assert letter["pipeline_version"] == __version__
    assert set(orjson.loads(deadletter.encode(letter))) == {
        "original",
        "topic",
        "partition",
        "offset",
        "stage",
        "error_type",
        "message",
        "pipeline_version",
        "time",
    }


def test_non_utf8_original_goes_to_base64_and_round_trips() -> None:
    raw = b"<14>\xff\xfe not utf-8"
    letter = deadletter.dead_letter(raw, stage="parse", error_type="encoding", message="bad")
    assert "original" not in letter
    assert deadletter.original_bytes(letter) == raw
