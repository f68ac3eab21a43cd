"""The ``index`` agent: ``panos.events`` -> Elasticsearch in bulk batches.

Offsets: Faust commits an event's offset once the event is acked. ``take_events`` acks a batch
only when the agent asks for the next one, and also from its ``finally`` when the agent stops
mid-batch. So each event gets one extra reference (``incref``) while its batch is in flight,
released only after Elasticsearch indexed it or it was dead-lettered: a batch interrupted by a
shutdown stays uncommitted and is consumed again (``_id`` makes that harmless).
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

from pipeline.metrics import METRICS, Metrics, observe_dead_letter
from pipeline.settings import Settings
from pipeline.sinks import deadletter
from pipeline.sinks.elasticsearch import BulkWriter
from pipeline.stream.topics import Topics

DOC_ID_HEADER = "doc_id"


def doc_id_of(event: Any) -> str:
    """The document id the process agent put in the headers (else a hash of the value)."""
    headers = event.headers or {}
    value = headers.get(DOC_ID_HEADER) if isinstance(headers, dict) else None
    if value is None and not isinstance(headers, dict):
        value = next((v for k, v in headers if k == DOC_ID_HEADER), None)
    if value:
        return value.decode() if isinstance(value, bytes) else str(value)
    return hashlib.sha1(event.value).hexdigest()


def register(
    app: Any, settings: Settings, topics: Topics, writer: BulkWriter, metrics: Metrics = METRICS
) -> Any:
    @app.agent(topics.events, name="index", concurrency=1)
    async def index(stream: Any) -> Any:
        async for events in stream.take_events(settings.bulk_size, settings.bulk_max_latency_s):
            for event in events:
                event.message.incref()
            by_id: dict[str, Any] = {}
            docs = []
            for event in events:
                doc_id = doc_id_of(event)
                try:
                    docs.append((doc_id, orjson.loads(event.value)))
                    by_id[doc_id] = event
                except orjson.JSONDecodeError as exc:
                    await _dead_letter(topics, metrics, event, f"not JSON: {exc}")
            for item in await writer.write(docs):
                reason = f"{item.status} {item.error_type}: {item.reason}"
                await _dead_letter(topics, metrics, by_id[item.doc_id], reason)
            for event in events:
                event.ack()
            yield len(events)

    return index


async def _dead_letter(topics: Topics, metrics: Metrics, event: Any, reason: str) -> None:
    message = event.message
    letter = deadletter.dead_letter(
        event.value,
        stage="index",
        error_type="sink",
        message=reason[:2000],
        topic=message.topic,
        partition=message.partition,
        offset=message.offset,
    )
    await topics.dlq.send(key=event.key, value=deadletter.encode(letter))
    observe_dead_letter(metrics, "index", "sink")
