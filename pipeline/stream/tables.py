"""Writes to the worker's changelogged Faust tables, and the correlation table's bounds.

Faust writes a table key's changelog record to the partition of the event being processed
(``table[key] = value`` needs a current event). The worker changes its tables once per batch,
and a batch holds events of several partitions, so it writes each key with the partition of
the message that changed it (``put``/``delete``): on a rebalance the key moves with its
source partition, as Faust's own writes would.

The correlation table is written once per batch for many sessions: its changelog records go
straight to the Kafka producer (``CorrelationTable.write``), encoded as Faust's JSON codec
encodes them, without Faust's one-message-at-a-time send buffer. The in-memory store keeps no
persisted offsets (what Faust's own send callback would record), so recovery is the same.

``CorrelationTable`` keeps the correlation entries within ``correlation_max_entries`` (the
entries written longest ago go first) and drops entries idle for longer than the correlation
window. Entries are kept in write order (a write moves its key to the end), so both walk from
the oldest entry and stop at the first one to keep.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import orjson

from pipeline import correlate

# Entries remember the partition of the message that wrote them: their changelog partition.
PARTITION_KEY = "_p"


def put(table: Any, partition: int, key: Any, value: Any) -> None:
    """Set ``key`` in ``table`` and write it to changelog partition ``partition``."""
    data = table.data
    data.pop(key, None)  # keep the store in write order
    data[key] = value
    table.send_changelog(partition, key, value)


def delete(table: Any, partition: int, key: Any) -> None:
    """Remove ``key`` and write its tombstone to changelog partition ``partition``."""
    table.data.pop(key, None)
    table.send_changelog(partition, key, None, value_serializer="raw")


def _encode(value: Any) -> bytes:
    # what Faust's json codec writes (orjson with these options), so that recovery reads it
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS | orjson.OPT_UTC_Z)


class CorrelationTable:
    """The correlation entries of a worker: a Faust table's store, read by the chain."""

    def __init__(self, table: Any, *, max_entries: int, window_s: float) -> None:
        self.table = table
        self.max_entries = max_entries
        self.window_s = window_s

    @property
    def entries(self) -> Mapping[str, Any]:
        """The entries (read without Faust's per-read bookkeeping)."""
        return self.table.data

    def __len__(self) -> int:
        return len(self.table.data)

    async def write(
        self,
        producer: Any,
        changes: Mapping[str, dict[str, Any] | None],
        partitions: Mapping[str, int],
    ) -> None:
        """Store one batch's changes; ``partitions``: the source partition of each key."""
        data = self.table.data
        send = producer.send
        topic = self.table.changelog_topic.get_topic_name()
        for key, entry in changes.items():
            partition = partitions[key]
            data.pop(key, None)  # keep the store in write order
            if entry is None:
                await send(topic, _encode(key), None, partition, None, headers=None)
                continue
            entry[PARTITION_KEY] = partition
            data[key] = entry
            await send(topic, _encode(key), _encode(entry), partition, None, headers=None)

    def evict(self, owned: Callable[[int], bool]) -> int:
        """Delete the oldest entries while there are too many; returns how many."""
        data = self.table.data
        evicted = 0
        while len(data) > self.max_entries:
            key = next(iter(data))
            self._drop(key, data[key], owned)
            evicted += 1
        return evicted

    def expire(self, now: float, owned: Callable[[int], bool]) -> int:
        """Delete the entries idle for longer than the window; returns how many."""
        data = self.table.data
        expired = 0
        window = self.window_s
        while data:
            key = next(iter(data))
            entry = data[key]
            if isinstance(entry, dict) and not correlate.expired(entry, now, window):
                break
            self._drop(key, entry, owned)
            expired += 1
        return expired

    def _drop(self, key: str, entry: Any, owned: Callable[[int], bool]) -> None:
        partition = entry.get(PARTITION_KEY) if isinstance(entry, dict) else None
        if isinstance(partition, int) and owned(partition):
            delete(self.table, partition, key)
        else:
            # restored from a partition this worker no longer owns: its new owner decides
            self.table.data.pop(key, None)
