"""The worker's Kafka topics (names from settings), declared on a Faust app.

Keys and values travel as raw bytes: the raw topic holds syslog bytes as received, the others
what ``pipeline.wire`` encodes (orjson). Faust's codecs stay out of the hot path. The failure
counts topic is internal to one deployment (named after its worker id): workers write their
window counts to it, keyed by cause, and the spike agent reads it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pipeline import wire
from pipeline.settings import Settings


@dataclass(frozen=True)
class Topics:
    raw: Any
    events: Any
    alerts: Any
    dlq: Any
    failure_counts: Any
    events_ocsf: Any  # None unless ocsf_enabled


def declare(app: Any, settings: Settings) -> Topics:
    def topic(name: str) -> Any:
        return app.topic(
            name,
            key_type=bytes,
            value_type=bytes,
            key_serializer="raw",
            value_serializer="raw",
            partitions=settings.topic_partitions,
            replicas=settings.topic_replication,
        )

    return Topics(
        raw=topic(settings.topic_raw),
        events=topic(settings.topic_events),
        alerts=topic(settings.topic_alerts),
        dlq=topic(settings.topic_dlq),
        failure_counts=topic(wire.failure_counts_topic(settings.worker_id)),
        events_ocsf=topic(settings.topic_events_ocsf) if settings.ocsf_enabled else None,
    )
