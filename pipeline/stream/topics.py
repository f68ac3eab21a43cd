"""The worker's Kafka topics (names from settings), declared on a Faust app.

Values and keys travel as raw bytes: the raw topic holds syslog bytes as received, the others
JSON that the agents encode with orjson. Faust's codecs stay out of the hot path."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pipeline.settings import Settings


@dataclass(frozen=True)
class Topics:
    raw: Any
    events: Any
    alerts: Any
    dlq: Any
    # The same events and alerts topics for agents that want values as decoded JSON.
    events_json: Any
    alerts_json: Any


def declare(app: Any, settings: Settings) -> Topics:
    def topic(name: str, codec: str = "raw") -> Any:
        return app.topic(
            name,
            key_type=bytes,
            value_type=None if codec == "json" else bytes,
            key_serializer="raw",
            value_serializer=codec,
            partitions=settings.topic_partitions,
            replicas=settings.topic_replication,
        )

    return Topics(
        raw=topic(settings.topic_raw),
        events=topic(settings.topic_events),
        alerts=topic(settings.topic_alerts),
        dlq=topic(settings.topic_dlq),
        events_json=topic(settings.topic_events, "json"),
        alerts_json=topic(settings.topic_alerts, "json"),
    )
