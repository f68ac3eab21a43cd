"""The ``process`` agent: ``panos.raw`` -> parse, diagnose, correlate, ECS -> ``panos.events``.

A message that cannot be processed becomes a dead letter on ``panos.dlq`` with its reason;
the stream carries on. Sends go to Faust's producer buffer (``send_soon``): Faust flushes that
buffer before it commits offsets, so an offset is committed only once its outputs are in
Kafka. Correlation entries live in a changelogged Faust table keyed ``serial:sessionid`` (the
raw topic is keyed by serial, so a session's lines share a partition).
"""

from __future__ import annotations

import time
from typing import Any

from pipeline.errors import FramingError
from pipeline.metrics import METRICS, Metrics, observe_dead_letter
from pipeline.settings import Settings
from pipeline.sinks import deadletter
from pipeline.stream.index import DOC_ID_HEADER, INDEX_HEADER
from pipeline.stream.processing import Processor, expire
from pipeline.stream.topics import Topics
from pipeline.syslog.publisher import CUT_HEADER


def register(
    app: Any,
    settings: Settings,
    topics: Topics,
    table: Any,
    processor: Processor,
    *,
    metrics: Metrics = METRICS,
) -> Any:
    sweep_every = max(1.0, settings.correlation_window_s / 4)
    next_sweep: dict[int, float] = {}
    published = metrics.events_published
    evicted = metrics.correlation_evicted
    order = processor.order

    @app.agent(topics.raw, name="process")
    async def process(stream: Any) -> Any:
        async for event in stream.events():
            message = event.message
            partition = message.partition
            now = time.time()
            try:
                if event.headers:
                    _refuse_cut(event.headers)
                outgoing = processor.handle(event.value, table, now, partition)
            except Exception as exc:
                letter = deadletter.from_error(
                    event.value,
                    exc,
                    topic=message.topic,
                    partition=partition,
                    offset=message.offset,
                )
                topics.dlq.send_soon(key=event.key, value=deadletter.encode(letter))
                observe_dead_letter(metrics, letter["stage"], letter["error_type"])
                yield 0
                continue
            for out in outgoing:
                # buffered (Faust flushes its producer before committing offsets); the index
                # agent bulk-indexes the value as it is, under these id and index
                topics.events.send_soon(
                    key=out.key,
                    value=out.value,
                    headers={DOC_ID_HEADER: out.doc_id, INDEX_HEADER: out.index},
                )
            published.inc(len(outgoing))
            if len(table) > order.max_entries:
                evicted.inc(order.evict(table, partition))
            if now >= next_sweep.get(partition, 0.0):
                next_sweep[partition] = now + sweep_every
                order.forget(
                    partition, expire(table, now, settings.correlation_window_s, partition)
                )
                metrics.correlation_entries.set(len(table))
            # one value per event: Faust's test context waits for it
            yield len(outgoing)

    return process


def _refuse_cut(headers: Any) -> None:
    """A message ingest cut at ``max_message_bytes`` is a fragment: dead-letter, not parse."""
    items = headers.items() if isinstance(headers, dict) else headers
    for name, value in items:
        if name == CUT_HEADER:
            kept = value.decode() if isinstance(value, bytes) else str(value)
            raise FramingError(
                f"message longer than max_message_bytes: ingest kept its first {kept} bytes",
                error_type="oversized",
            )
