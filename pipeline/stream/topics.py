"""The worker's Kafka topics (names from settings), declared on a Faust app.

Values and keys travel as raw bytes: the raw topic holds syslog bytes as received, the others
JSON that the agents encode with orjson. Faust's codecs stay out of the hot path, except for
``events_failures``: the events topic decoded to the few fields of a failure that spike
detection reads (``pipeline.alerting.failure_from_event``), so that re-keying failures by cause
re-sends a small document instead of the whole event."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from faust.serializers import codecs

from pipeline.settings import Settings

FAILURE_VIEW_CODEC = "decryptscope-failure-view"
# (path, ...) of every field failure_from_event and the spike agent read.
FAILURE_FIELDS = (
    ("_id",),
    ("event", "id"),
    ("tls", "client", "server_name"),
    ("destination", "domain"),
    ("destination", "ip"),
    ("rule", "name"),
    ("source", "ip"),
    ("observer", "serial_number"),
    ("panw", "panos", "type"),
    ("panw", "panos", "sequence_number"),
)
DIAGNOSIS_FIELDS = ("failure", "cause", "category", "mode", "remediation")


def failure_view(doc: Any) -> Any:
    """The fields of an ECS event that spike detection reads; ``{}`` for a non-failure."""
    if not isinstance(doc, Mapping):
        return doc
    ds = doc.get("decryptscope")
    if not isinstance(ds, Mapping) or not ds.get("failure"):
        return {}
    view: dict[str, Any] = {"decryptscope": {k: ds[k] for k in DIAGNOSIS_FIELDS if k in ds}}
    for path in FAILURE_FIELDS:
        node: Any = doc
        for key in path:
            node = node.get(key) if isinstance(node, Mapping) else None
        if node is None:
            continue
        into = view
        for key in path[:-1]:
            into = into.setdefault(key, {})
        into[path[-1]] = node
    return view


class FailureViewCodec(codecs.Codec):
    def _dumps(self, obj: Any) -> bytes:
        return orjson.dumps(obj)

    def _loads(self, s: bytes) -> Any:
        # Most events are not failures: no need to decode a document that cannot be one (the
        # marker cannot occur inside a JSON string, where its quotes would be escaped).
        if b'"failure":true' not in s and b'"failure": true' not in s:
            return {}
        return failure_view(orjson.loads(s))


codecs.register(FAILURE_VIEW_CODEC, FailureViewCodec())


@dataclass(frozen=True)
class Topics:
    raw: Any
    events: Any
    alerts: Any
    dlq: Any
    # The same events and alerts topics for agents that want values decoded: events as the
    # fields of a failure (``failure_view``), alerts as JSON.
    events_json: Any
    alerts_json: Any


def declare(app: Any, settings: Settings) -> Topics:
    def topic(name: str, codec: str = "raw") -> Any:
        return app.topic(
            name,
            key_type=bytes,
            value_type=bytes if codec == "raw" else None,
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
        events_json=topic(settings.topic_events, FAILURE_VIEW_CODEC),
        alerts_json=topic(settings.topic_alerts, "json"),
    )
