"""``decryptscope dlq``: what to show and what to send back, without Kafka (the real topic is
exercised in tests/integration/test_dlq.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson
import pytest

from pipeline import wire
from pipeline.commands import dlq
from pipeline.errors import ConfigError, ParseError

RAW = "panos.raw"
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
LINE = (
    b"<14>Nov 20 10:15:02 fw-edge-01 1,2026/11/20 10:15:02,012801096514,DECRYPTION,0,2561,"
    b"2026/11/20 10:15:02,192.0.2.10"
)


def letter(
    offset: int, original: bytes = LINE, *, replay_of: str | None = None, **kw
) -> dlq.Letter:
    body = wire.from_error(
        original,
        ParseError("only 8 columns", error_type="too_few_columns"),
        topic=kw.pop("topic", RAW),
        partition=1,
        offset=500 + offset,
        replay_of=replay_of,
    )
    body.update(kw)
    return dlq.Letter(f"panos.dlq/0/{offset}", kw.get("key", b"203.0.113.9"), offset * 1000, body)


@pytest.mark.parametrize(
    ("text", "delta"), [("90m", 5400), ("2h", 7200), ("45s", 45), ("7d", 604800), ("1w", 604800)]
)
def test_since_takes_windows(text: str, delta: int) -> None:
    assert dlq.parse_since(text, NOW) == NOW - timedelta(seconds=delta)


def test_since_all_is_the_whole_topic() -> None:
    assert dlq.parse_since("all", NOW) is None


def test_since_takes_iso_times_local_unless_an_offset_is_given() -> None:
    assert dlq.parse_since("2026-11-20T10:00+01:00", NOW) == datetime(
        2026, 11, 20, 9, 0, tzinfo=UTC
    )
    naive = dlq.parse_since("2026-11-20T10:00", NOW)
    assert naive == datetime(2026, 11, 20, 10, 0).astimezone()


@pytest.mark.parametrize("text", ["yesterday", "10 apples", "5x", "", "0m"])
def test_since_refuses_anything_else(text: str) -> None:
    with pytest.raises(ConfigError):
        dlq.parse_since(text, NOW)


def test_a_replay_carries_the_original_bytes_the_serial_key_and_the_marker() -> None:
    value, key, headers = dlq.replay_record(letter(7))
    assert value == LINE
    assert key == b"012801096514"
    assert dict(headers)[wire.REPLAY_HEADER] == b"panos.dlq/0/7"


def test_a_replay_of_a_line_without_serial_keeps_the_key_the_ingest_gave_it() -> None:
    value, key, _ = dlq.replay_record(letter(3, b"<14>Nov 20 10:15:09 fw this is not PAN-OS"))
    assert value == b"<14>Nov 20 10:15:09 fw this is not PAN-OS"
    assert key == b"203.0.113.9"


def test_binary_originals_are_replayed_byte_for_byte() -> None:
    raw = b"<14>Nov 20 10:15:09 fw \xff\xfe 1,2,3"
    value, _, _ = dlq.replay_record(letter(4, raw))
    assert value == raw


def test_a_replayed_letter_points_at_the_first_letter_of_its_chain() -> None:
    again = letter(9, replay_of="panos.dlq/0/7")
    _, _, headers = dlq.replay_record(again)
    assert dict(headers)[wire.REPLAY_HEADER] == b"panos.dlq/0/7"


def test_replay_sends_each_chain_until_something_of_it_comes_back() -> None:
    first, second, other = letter(1), letter(2), letter(3, topic="panos.events")
    came_back = letter(5, replay_of=first.position)
    letters = [first, second, other, came_back]
    plan = dlq.plan_replay(letters, letters, RAW, include_replayed=False)
    assert plan.send == [second]
    assert (plan.already_back, plan.results_of_replay, plan.not_raw) == (1, 1, 1)


def test_include_replayed_sends_the_newest_failure_of_each_chain_once() -> None:
    first = letter(1)
    back1 = letter(5, replay_of=first.position)
    back2 = letter(8, replay_of=first.position)
    letters = [first, back1, back2]
    plan = dlq.plan_replay(letters, letters, RAW, include_replayed=True)
    assert plan.send == [back2]
    assert plan.already_back == 1 and plan.results_of_replay == 1


def test_repeated_replays_never_send_more_than_the_first() -> None:
    # simulate: replay, every replay fails again, replay again: the topic stops growing
    letters = [letter(i) for i in range(5)]
    sent_total = []
    for round_ in range(3):
        plan = dlq.plan_replay(letters, letters, RAW, include_replayed=False)
        sent_total.append(len(plan.send))
        letters += [
            letter(100 + 10 * round_ + i, replay_of=x.root) for i, x in enumerate(plan.send)
        ]
    assert sent_total == [5, 0, 0]
    assert len(letters) == 10


def test_stage_filter() -> None:
    letters = [letter(1), letter(2, stage="config")]
    assert dlq.select(letters, "config") == [letters[1]]
    assert dlq.select(letters, None) == letters


def test_show_line_has_time_stage_type_source_message_and_preview() -> None:
    item = letter(7, replay_of="panos.dlq/0/2")
    line = dlq.show_line(item)
    body = item.body
    for part in (body["time"], "parse", "too_few_columns", "panos.raw/1/507", "only 8 columns"):
        assert part in line
    assert "replay of panos.dlq/0/2" in line
    assert line.endswith(LINE.decode()[: dlq.PREVIEW_CHARS - 3] + "...")


def test_json_output_is_the_letter_and_its_position() -> None:
    item = letter(7)
    assert orjson.loads(dlq.as_json(item)) == {**item.body, "dlq_position": "panos.dlq/0/7"}
