"""A bounded on-disk queue in front of the Kafka publisher (``decryptscope ingest --spool DIR``).

Without it, what ingest has read from a socket but Kafka has not acknowledged yet lives only in
memory: a SIGKILL, an OOM kill or a crash loses it. With it, every accepted message is appended
to a segment file in ``DIR`` *before* it counts as received, and a segment is deleted once Kafka
acknowledged every message in it. On start, ingest publishes what the segments of the previous
run still hold, then opens its listeners: nothing accepted is lost, and what was acknowledged
just before a crash is published twice (at-least-once; Elasticsearch ``_id`` makes that
harmless).

A write reaches the operating system's page cache before the message counts: that survives the
death of the process, not of the machine (``fsync`` per message would cost too much; a
segment is synced when it is closed). The spool is bounded by ``spool_max_bytes``: when full,
``full`` is true and the listeners apply the same backpressure as when the publisher's buffer is
full (TCP pauses, UDP drops and counts).

Record layout: ``>I`` length of the rest, ``>I`` CRC-32 of the rest, then ``>QBH`` received-at
(epoch ms), cut flag, key length, the key, ``>H`` sender length, the sender, the message. A
torn or corrupt tail (a crash in the middle of a write) ends the segment's replay.
"""

from __future__ import annotations

import os
import struct
import threading
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.errors import ConfigError

SEGMENT_BYTES = 16 * 1024 * 1024
_FRAME = struct.Struct(">II")
_HEAD = struct.Struct(">QBH")
_SENDER = struct.Struct(">H")
_PREFIX = "segment-"
_SUFFIX = ".spool"


@dataclass(frozen=True, slots=True)
class Record:
    value: bytes
    key: bytes
    sender: str
    received_ms: int
    cut: bool


def encode(record: Record) -> bytes:
    sender = record.sender.encode()
    body = b"".join(
        (
            _HEAD.pack(record.received_ms, 1 if record.cut else 0, len(record.key)),
            record.key,
            _SENDER.pack(len(sender)),
            sender,
            record.value,
        )
    )
    return _FRAME.pack(len(body), zlib.crc32(body)) + body


def decode_all(data: bytes) -> Iterator[Record]:
    """The records of one segment's bytes, up to a torn or corrupt tail."""
    pos = 0
    end = len(data)
    while pos + _FRAME.size <= end:
        length, crc = _FRAME.unpack_from(data, pos)
        body_start = pos + _FRAME.size
        body = data[body_start : body_start + length]
        if len(body) < length or zlib.crc32(body) != crc or length < _HEAD.size + _SENDER.size:
            return
        received_ms, cut, key_len = _HEAD.unpack_from(body, 0)
        at = _HEAD.size
        key = body[at : at + key_len]
        at += key_len
        (sender_len,) = _SENDER.unpack_from(body, at)
        at += _SENDER.size
        sender = body[at : at + sender_len].decode("utf-8", "replace")
        at += sender_len
        yield Record(body[at:], key, sender, received_ms, bool(cut))
        pos = body_start + length


def segments(folder: Path) -> list[Path]:
    """The segment files of a spool directory, oldest first."""
    found = [p for p in folder.glob(f"{_PREFIX}*{_SUFFIX}") if p.is_file()]
    return sorted(found, key=lambda p: int(p.name[len(_PREFIX) : -len(_SUFFIX)]))


def pending_records(folder: Path) -> list[Record]:
    """Everything a spool directory still holds (what a restart would publish again)."""
    out: list[Record] = []
    for path in segments(folder):
        out.extend(decode_all(path.read_bytes()))
    return out


class Spool:
    """Segments on disk with per-segment counts of messages not yet acknowledged by Kafka.

    ``append`` runs on the event loop; ``acked`` runs on the Kafka client's thread."""

    def __init__(self, folder: str | os.PathLike[str], max_bytes: int) -> None:
        self.folder = Path(folder)
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            probe = self.folder / ".writable"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            raise ConfigError(f"setting spool_dir: cannot write to {self.folder}: {exc}") from exc
        self.max_bytes = max_bytes
        # several segments fit in the bound, so acknowledged ones can always be deleted
        self.segment_bytes = max(64 * 1024, min(SEGMENT_BYTES, max_bytes // 4))
        self._lock = threading.Lock()
        self._outstanding: dict[int, int] = {}
        self._sizes: dict[int, int] = {}
        self._bytes = 0
        self._active = -1
        self._fd = -1
        self._active_size = 0

    # --- state ----------------------------------------------------------------------------
    @property
    def bytes(self) -> int:
        return self._bytes

    @property
    def full(self) -> bool:
        return self._bytes >= self.max_bytes

    def _path(self, number: int) -> Path:
        return self.folder / f"{_PREFIX}{number}{_SUFFIX}"

    # --- restart --------------------------------------------------------------------------
    def recover(self) -> list[tuple[Record, int]]:
        """The records left by a previous run, each with the segment that holds it; those
        segments are deleted once everything in them is acknowledged again."""
        out: list[tuple[Record, int]] = []
        for path in segments(self.folder):
            number = int(path.name[len(_PREFIX) : -len(_SUFFIX)])
            records = list(decode_all(path.read_bytes()))
            size = path.stat().st_size
            if not records:
                path.unlink()
                continue
            with self._lock:
                self._outstanding[number] = len(records)
                self._sizes[number] = size
                self._bytes += size
            out.extend((record, number) for record in records)
            self._active = max(self._active, number)
        return out

    # --- the event-loop side ----------------------------------------------------------------
    def append(self, record: Record) -> int:
        """Write one record; returns the segment number to acknowledge it with."""
        data = encode(record)
        if self._fd < 0 or self._active_size + len(data) > self.segment_bytes:
            self._rotate()
        written = os.write(self._fd, data)
        while written < len(data):  # a short write (rare on regular files): finish it
            written += os.write(self._fd, data[written:])
        number = self._active
        with self._lock:
            self._outstanding[number] = self._outstanding.get(number, 0) + 1
            self._sizes[number] = self._sizes.get(number, 0) + len(data)
            self._bytes += len(data)
        self._active_size += len(data)
        return number

    def _rotate(self) -> None:
        previous, fd = self._active, self._fd
        self._active = previous + 1
        self._fd = os.open(self._path(self._active), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._active_size = 0
        if fd >= 0:
            os.fsync(fd)
            os.close(fd)
            self._maybe_delete(previous)

    # --- the Kafka side ---------------------------------------------------------------------
    def acked(self, number: int) -> None:
        with self._lock:
            left = self._outstanding.get(number, 0) - 1
            self._outstanding[number] = left
        if left <= 0:
            self._maybe_delete(number)

    def _maybe_delete(self, number: int) -> None:
        with self._lock:
            writing = number == self._active and self._fd >= 0
            if writing or self._outstanding.get(number, 0) > 0:
                return
            self._outstanding.pop(number, None)
            self._bytes -= self._sizes.pop(number, 0)
        self._path(number).unlink(missing_ok=True)

    def close(self) -> None:
        """Close the active segment (kept when it still holds unacknowledged messages)."""
        if self._fd >= 0:
            os.fsync(self._fd)
            os.close(self._fd)
            self._fd = -1
            number, self._active = self._active, self._active + 1
            self._maybe_delete(number)


class SpoolingPublisher:
    """A Publisher whose ``offer`` writes to the spool first; same interface for listeners."""

    def __init__(self, publisher: Any, spool: Spool) -> None:
        self.publisher = publisher
        self.spool = spool
        publisher.on_acked = spool.acked
        self.topic = publisher.topic
        self.stats = publisher.stats

    @property
    def buffered(self) -> int:
        return self.publisher.buffered

    @property
    def full(self) -> bool:
        return self.publisher.full or self.spool.full

    def start_producer(self) -> None:
        self.publisher.start_producer()

    def start(self) -> int:
        """Start publishing; first re-offers what a previous run left. Returns that count."""
        self.publisher.start()
        left = self.spool.recover()
        for record, number in left:
            self.publisher.offer(
                record.value,
                record.key,
                record.sender,
                record.received_ms,
                cut=record.cut,
                token=number,
            )
        return len(left)

    def offer(
        self, value: bytes, key: bytes, sender: str, received_ms: int, *, cut: bool = False
    ) -> None:
        number = self.spool.append(Record(value, key, sender, received_ms, cut))
        self.publisher.offer(value, key, sender, received_ms, cut=cut, token=number)

    def offer_many(
        self, messages: list[tuple[bytes, bytes, bool]], sender: str, received_ms: int
    ) -> None:
        append = self.spool.append
        tokens = [append(Record(v, k, sender, received_ms, c)) for v, k, c in messages]
        self.publisher.offer_many(messages, sender, received_ms, tokens)

    def when_room(self, callback: Callable[[], None]) -> None:
        self.publisher.when_room(callback)

    async def drain(self, timeout: float) -> bool:
        return await self.publisher.drain(timeout)

    async def close(self, timeout: float = 30.0) -> bool:
        drained = await self.publisher.close(timeout)
        self.spool.close()
        return drained
