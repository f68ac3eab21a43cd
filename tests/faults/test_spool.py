"""The disk spool of ingest, without servers: records survive a restart byte for byte, a torn
tail is ignored, a segment goes once Kafka acknowledged all of it, and the bound is kept."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from pipeline.errors import ConfigError
from pipeline.syslog import spool as spool_mod
from pipeline.syslog.spool import Record, Spool, SpoolingPublisher


def record(n: int, cut: bool = False) -> Record:
    return Record(b"message \xff %d" % n, b"serial-%d" % (n % 3), f"192.0.2.1:{n}", 1000 + n, cut)


def test_records_round_trip_and_a_torn_tail_ends_the_replay() -> None:
    data = b"".join(spool_mod.encode(record(n, cut=n == 2)) for n in range(5))
    assert list(spool_mod.decode_all(data)) == [record(n, cut=n == 2) for n in range(5)]
    assert list(spool_mod.decode_all(data[:-3])) == [record(n, cut=n == 2) for n in range(4)]
    corrupt = bytearray(data)
    corrupt[-1] ^= 0xFF
    assert len(list(spool_mod.decode_all(bytes(corrupt)))) == 4


def test_what_is_not_acknowledged_is_recovered_after_a_crash(tmp_path) -> None:
    first = Spool(tmp_path, 10 * 1024 * 1024)
    numbers = [first.append(record(n)) for n in range(10)]
    for number in numbers[:4]:
        first.acked(number)
    # no close(): the process died; the active segment stays on disk as it is
    second = Spool(tmp_path, 10 * 1024 * 1024)
    left = second.recover()
    # one segment: acknowledged and not are in the same file, so all ten come back
    assert [r for r, _n in left] == [record(n) for n in range(10)]
    for _record, number in left:
        second.acked(number)
    assert spool_mod.segments(tmp_path) == []
    assert second.bytes == 0


def test_acknowledged_segments_are_deleted_and_the_bound_holds(tmp_path) -> None:
    spool = Spool(tmp_path, 256 * 1024)  # segments of 64 KiB
    big = Record(b"x" * 10_000, b"k", "s", 0, False)
    numbers = [spool.append(big) for _ in range(30)]
    assert len(set(numbers)) > 2
    assert spool.full
    for number in numbers:
        spool.acked(number)
    assert not spool.full
    assert len(spool_mod.segments(tmp_path)) == 1  # only the active one
    spool.close()
    assert spool_mod.segments(tmp_path) == []


def test_an_unwritable_spool_dir_is_a_config_error(tmp_path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(ConfigError, match="spool_dir"):
        Spool(blocker / "spool", 1024 * 1024)


class FakeProducerPublisher:
    """The Publisher's interface, acknowledging at once (no Kafka here)."""

    def __init__(self) -> None:
        self.topic = "raw"
        self.stats = None
        self.on_acked: Any = None
        self.sent: list[bytes] = []
        self.full = False
        self.buffered = 0

    def start(self) -> None:
        return None

    def offer(self, value, key, sender, received_ms, *, cut=False, token=None) -> None:
        self.sent.append(value)
        self.on_acked(token)

    async def close(self, timeout: float = 30.0) -> bool:
        return True


def test_the_spooling_publisher_writes_before_offering_and_replays_on_start(tmp_path) -> None:
    inner = FakeProducerPublisher()
    publisher = SpoolingPublisher(inner, Spool(tmp_path, 1024 * 1024))
    assert publisher.start() == 0
    publisher.offer(b"one", b"k", "s", 1)
    assert inner.sent == [b"one"]
    asyncio.run(publisher.close())
    assert spool_mod.segments(tmp_path) == []
    # a previous run's leftovers are offered before anything new
    crashed = Spool(tmp_path, 1024 * 1024)
    crashed.append(record(7))
    again = FakeProducerPublisher()
    assert SpoolingPublisher(again, Spool(tmp_path, 1024 * 1024)).start() == 1
    assert again.sent == [record(7).value]
