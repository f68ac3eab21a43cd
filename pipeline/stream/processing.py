"""What the ``process`` agent does to one raw syslog message, without Faust.

parse -> diagnose + correlate (``pipeline.correlate.observe`` over a mapping of entries, a Faust
table in the worker) -> ECS -> encoded events for ``panos.events``, each with its document id
and its daily index (so the index agent can bulk the bytes as they are). Bad input raises the
project's errors (the agent dead-letters them); nothing here touches Kafka. The table is
written only once every step succeeded, so a message that fails leaves no state behind.
``EntryOrder`` keeps the table within ``correlation_max_entries`` by evicting the sessions
written longest ago.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

import orjson

from pipeline import correlate
from pipeline.errors import DecryptscopeError
from pipeline.metrics import METRICS, Metrics, observe_record
from pipeline.settings import Settings
from pipeline.sinks.elasticsearch import index_for

# Entries remember the Kafka partition they were written from, so that expiry (which must
# write its tombstone to the same changelog partition) only removes entries of the partition
# being processed.
PARTITION_KEY = "_partition"


class StageError(DecryptscopeError):
    """A step after parsing failed on this input; carries the step as its stage."""

    def __init__(self, stage: str, error: BaseException) -> None:
        super().__init__(f"{type(error).__name__}: {error}", error_type="parse")
        self.stage = stage


@dataclass(frozen=True, slots=True)
class Outgoing:
    key: bytes  # serial:sessionid
    doc_id: bytes
    value: bytes  # ECS JSON
    index: bytes  # <index_prefix>-YYYY.MM.DD of its @timestamp


def _parse_line() -> Callable[..., dict[str, Any]]:
    from pipeline.panos import parse_line

    return parse_line


class Processor:
    def __init__(
        self,
        settings: Settings,
        *,
        metrics: Metrics | None = METRICS,
        parse_line: Callable[..., dict[str, Any]] | None = None,
    ) -> None:
        from pipeline import ecs
        from pipeline.diagnosis import classifier_for

        self.window_s = settings.correlation_window_s
        self.default_tz = settings.default_timezone
        self.tz_for = settings.timezone_for if settings.device_timezones else None
        self.classifier = classifier_for(None)
        self.parse_line = parse_line or _parse_line()
        self.to_ecs = ecs.to_ecs
        self.document_id = ecs.document_id
        self.index_prefix = settings.index_prefix
        self.metrics = metrics
        self._parse_observe = metrics.parse_duration.observe if metrics is not None else None
        self.order = EntryOrder(settings.correlation_max_entries)

    def handle(
        self, raw: bytes, table: MutableMapping[str, Any], now: float, partition: int = 0
    ) -> list[Outgoing]:
        started = time.perf_counter()
        record = self.parse_line(raw, default_tz=self.default_tz, tz_for=self.tz_for)
        if self._parse_observe is not None:
            self._parse_observe(time.perf_counter() - started)
        key = correlate.correlation_key(record)
        try:
            entry, emits = correlate.observe(
                table.get(key) if key is not None else None,
                record,
                now,
                self.window_s,
                classifier=self.classifier,
                reparse=self._reparse,
            )
        except DecryptscopeError:
            raise
        except Exception as exc:
            raise StageError("diagnose", exc) from exc
        out: list[Outgoing] = []
        original = raw.decode("utf-8", "replace")
        try:
            for emit in emits:
                doc = self.to_ecs(
                    emit.record,
                    emit.diagnosis,
                    correlation=emit.correlation,
                    original=emit.original if emit.reemit else original,
                )
                out.append(
                    Outgoing(
                        _session_key(emit.record),
                        self.document_id(emit.record).encode(),
                        orjson.dumps(doc),
                        index_for(doc, self.index_prefix).encode(),
                    )
                )
        except DecryptscopeError:
            raise
        except Exception as exc:
            raise StageError("ecs", exc) from exc
        if key is not None and entry is not None:
            entry[PARTITION_KEY] = partition
            table[key] = entry
            self.order.touch(table, partition, key)
        if self.metrics is not None:
            observe_record(self.metrics, record, emits[0].diagnosis if emits else None)
        return out

    def _reparse(self, text: str) -> dict[str, Any]:
        return self.parse_line(text, default_tz=self.default_tz, tz_for=self.tz_for)


def _session_key(record: Any) -> bytes:
    serial = record.get("serial")
    sessionid = record.get("sessionid")
    return f"{'' if serial is None else serial}:{'' if sessionid is None else sessionid}".encode()


def expire(
    table: MutableMapping[str, Any], now: float, window_s: float, partition: int
) -> list[str]:
    """Delete the expired entries written from ``partition``; returns their keys."""
    stale = [
        key
        for key, entry in list(table.items())
        if entry is not None
        and entry.get(PARTITION_KEY, partition) == partition
        and correlate.expired(entry, now, window_s)
    ]
    for key in stale:
        del table[key]
    return stale


class EntryOrder:
    """The correlation table's keys per partition, oldest write first, to bound its size.

    Evictions only remove keys of the partition being processed: a table deletion writes its
    tombstone to the changelog partition of the current event. Keys restored from the
    changelog (after a restart or a rebalance) are taken in at a partition's first write, in
    the order of their last record."""

    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self.by_partition: dict[int, OrderedDict[str, None]] = {}

    def touch(self, table: MutableMapping[str, Any], partition: int, key: str) -> None:
        keys = self.by_partition.get(partition)
        if keys is None:
            keys = self.by_partition[partition] = self._restored(table, partition)
        keys[key] = None
        keys.move_to_end(key)

    def forget(self, partition: int, keys: list[str]) -> None:
        known = self.by_partition.get(partition)
        if known is not None:
            for key in keys:
                known.pop(key, None)

    def evict(self, table: MutableMapping[str, Any], partition: int) -> int:
        """Delete this partition's oldest entries while the table holds too many."""
        keys = self.by_partition.get(partition)
        evicted = 0
        while keys and len(table) > self.max_entries:
            key, _ = keys.popitem(last=False)
            if key in table:
                del table[key]
                evicted += 1
        return evicted

    @staticmethod
    def _restored(table: MutableMapping[str, Any], partition: int) -> OrderedDict[str, None]:
        mine = [
            (float(entry.get("last", 0.0)), key)
            for key, entry in list(table.items())
            if isinstance(entry, dict) and entry.get(PARTITION_KEY, partition) == partition
        ]
        mine.sort()
        return OrderedDict((key, None) for _, key in mine)
