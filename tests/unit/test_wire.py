"""The Kafka contract (pipeline.wire): message keys, dead letters with their fields and
binary-safe originals, failure records and window counts."""

from __future__ import annotations

import orjson
import pytest

from pipeline import __version__, wire
from pipeline.errors import ParseError


def test_from_error_carries_stage_type_and_source() -> None:
    error = ParseError("only 3 columns", error_type="too_few_columns")
    letter = wire.from_error(b"<14>x 1,2,3", error, topic="t", partition=2, offset=41)
    assert letter["original"] == "<14>x 1,2,3"
    assert (letter["stage"], letter["error_type"]) == ("parse", "too_few_columns")
    assert (letter["topic"], letter["partition"], letter["offset"]) == ("t", 2, 41)
    assert letter["message"] == "only 3 columns"
    assert letter["pipeline_version"] == __version__
    assert set(orjson.loads(wire.encode_dead_letter(letter))) == {
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
    letter = wire.dead_letter(raw, stage="parse", error_type="encoding", message="bad")
    assert "original" not in letter
    assert wire.original_bytes(letter) == raw


def test_a_replayed_dead_letter_says_where_it_came_from() -> None:
    error = ParseError("still bad", error_type="not_panos")
    letter = wire.from_error(b"x", error, replay_of="panos.dlq/1/7")
    assert letter["replay_of"] == "panos.dlq/1/7"
    assert wire.decode_dead_letter(wire.encode_dead_letter(letter)) == letter
    with pytest.raises(ValueError):
        wire.decode_dead_letter(b'{"not": "a letter"}')


CSV = b"<14>Nov 30 16:09:33 PA-220 1,2021/11/11 15:42:44,007051000184334,DECRYPTION,0,2561"


@pytest.mark.parametrize(
    ("message", "sender", "key"),
    [
        (CSV, "192.0.2.1", b"007051000184334"),
        (b"<14>Nov 30 16:09:33 host CEF:0|Palo Alto Networks|PAN-OS|", "192.0.2.1", b"192.0.2.1"),
        (b"<14>Nov 30 16:09:33 host 1,2021/11/11 15:42:44,,TRAFFIC", "192.0.2.9", b"192.0.2.9"),
        (b"a,b,not a serial!,d", "198.51.100.7", b"198.51.100.7"),
    ],
)
def test_raw_key_is_serial_else_sender(message: bytes, sender: str, key: bytes) -> None:
    assert wire.raw_key(message, sender) == key


def test_session_key_and_headers() -> None:
    assert wire.session_key("0128", 42) == "0128:42"
    assert wire.session_key(None, 42) == ":42"
    assert wire.header([("cut", b"10"), ("x", b"y")], "cut") == b"10"
    assert wire.header({"cut": "10"}, "cut") == b"10"
    assert wire.header(None, "cut") is None


def test_failure_of_a_record_names_the_server_the_client_asked_for() -> None:
    diagnosis = type("D", (), {"cause": "c", "category": "k", "mode": "m", "remediation": "r"})
    record = {"sni": "a.example", "cn": "b.example", "dst": "192.0.2.1", "rule": "r1", "src": "s"}
    failure = wire.failure_of(record, diagnosis, "id1")
    assert (failure.server, failure.rule, failure.source, failure.event_id) == (
        "a.example",
        "r1",
        "s",
        "id1",
    )
    assert wire.failure_of({"cn": "b.example"}, diagnosis, "").server == "b.example"
    assert wire.failure_of({"dst": "192.0.2.1"}, diagnosis, "").server == "192.0.2.1"


def test_window_counts_add_merge_and_round_trip() -> None:
    failures = [
        (61.0, wire.Failure("c1", "a.example", "r", "192.0.2.1", "e1", "cat", "m", "fix")),
        (62.0, wire.Failure("c1", "b.example", "r", "192.0.2.2", "e2")),
        (125.0, wire.Failure("c1", "a.example")),
    ]
    first, second = wire.window_counts(failures, 60)
    assert (first.window, first.count, first.servers) == (1, 2, {"a.example": 1, "b.example": 1})
    assert (first.category, first.mode, first.remediation) == ("cat", "m", "fix")
    assert (second.window, second.count) == (2, 1)
    decoded = wire.decode_window_count(wire.encode_window_count(first))
    assert decoded == first
    decoded.merge(first)
    assert decoded.count == 4
    assert decoded.servers == {"a.example": 2, "b.example": 2}
    assert decoded.samples == ["e1", "e2", "e1", "e2"]
    with pytest.raises(ValueError):
        wire.decode_window_count(b'{"cause": "c"}')
