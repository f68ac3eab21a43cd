"""What the ``process`` agent does to one raw syslog message, without Faust.

parse -> diagnose + correlate (``pipeline.correlate.observe`` over a mapping of entries, a Faust
table in the worker) -> ECS -> encoded events for ``panos.events``. Bad input raises the
project's errors (the agent dead-letters them); nothing here touches Kafka. The table is
written only once every step succeeded, so a message that fails leaves no state behind.
"""

from __future__ import annotations

from collections.abc import Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

import orjson

from pipeline import correlate
from pipeline.errors import DecryptscopeError
from pipeline.metrics import METRICS, Metrics, observe_record
from pipeline.settings import Settings

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
        self.metrics = metrics

    def handle(
        self, raw: bytes, table: MutableMapping[str, Any], now: float, partition: int = 0
    ) -> list[Outgoing]:
        record = self.parse_line(raw, default_tz=self.default_tz, tz_for=self.tz_for)
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
                    )
                )
        except DecryptscopeError:
            raise
        except Exception as exc:
            raise StageError("ecs", exc) from exc
        if key is not None and entry is not None:
            entry[PARTITION_KEY] = partition
            table[key] = entry
        if self.metrics is not None:
            observe_record(self.metrics, record, emits[0].diagnosis if emits else None)
        return out

    def _reparse(self, text: str) -> dict[str, Any]:
        return self.parse_line(text, default_tz=self.default_tz, tz_for=self.tz_for)


def _session_key(record: Any) -> bytes:
    serial = record.get("serial")
    sessionid = record.get("sessionid")
    return f"{'' if serial is None else serial}:{'' if sessionid is None else sessionid}".encode()


def expire(table: MutableMapping[str, Any], now: float, window_s: float, partition: int) -> int:
    """Delete the expired entries written from ``partition``; returns how many."""
    stale = [
        key
        for key, entry in list(table.items())
        if entry is not None
        and entry.get(PARTITION_KEY, partition) == partition
        and correlate.expired(entry, now, window_s)
    ]
    for key in stale:
        del table[key]
    return len(stale)
