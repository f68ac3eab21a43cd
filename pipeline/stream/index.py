"""The ``index`` agent: ``panos.events`` -> Elasticsearch in bulk batches.

The process agent puts each event's document id and daily index in its headers, so the event's
value (ECS JSON from orjson, one line) goes into the bulk body as it is; an event without them
(another producer) is decoded to find its index, and one that is not JSON is dead-lettered.
Up to ``MAX_IN_FLIGHT`` bulk requests run at once while the next batch is collected.

Offsets: Faust commits an event's offset once the event is acked (its references are all
released). ``take_events`` releases a batch when the agent asks for the next one, which with
requests in flight is before the batch is indexed, and from its ``finally`` when the agent stops
mid-batch. So each event gets ``HELD`` extra references (``incref``) while its batch is in
flight, released only after Elasticsearch indexed it or it was dead-lettered: two, so that the
event stays held even where nothing else referenced it (Faust's test context). A batch
interrupted by a shutdown (its request cancelled) stays uncommitted and is consumed again
(``_id`` makes that harmless).

Stopping: Faust does not wait for held events (``stream_wait_empty`` is off: with Elasticsearch
away a bulk request retries for as long as it is away, and the worker would not stop). Instead
``InFlight.settle`` takes no new batch and gives the running requests ``STOP_GRACE_S`` to
finish before cancelling them; Faust then commits what was acked and no more.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import deque
from typing import Any

import orjson

from pipeline.metrics import METRICS, Metrics, observe_dead_letter
from pipeline.settings import Settings
from pipeline.sinks import deadletter
from pipeline.sinks.elasticsearch import BulkWriter, index_for
from pipeline.stream.topics import Topics

DOC_ID_HEADER = "doc_id"
INDEX_HEADER = "index"
MAX_IN_FLIGHT = 2
HELD = 2
# How long a stopping worker lets running bulk requests finish before abandoning them.
STOP_GRACE_S = 5.0


def _header(headers: Any, name: str) -> Any:
    if not headers:
        return None
    if isinstance(headers, dict):
        return headers.get(name)
    return next((v for k, v in headers if k == name), None)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def doc_id_of(event: Any) -> str:
    """The document id the process agent put in the headers (else a hash of the value)."""
    value = _header(event.headers, DOC_ID_HEADER)
    if value:
        return _text(value)
    return hashlib.sha1(event.value).hexdigest()


def index_of(event: Any, prefix: str) -> str:
    """The daily index the process agent put in the headers, else from the value's
    ``@timestamp``; raises ``orjson.JSONDecodeError`` (a ValueError) for a value that is not
    one line of JSON."""
    value = event.value
    if b"\n" in value:
        raise orjson.JSONDecodeError("a newline in the document", "", 0)
    index = _header(event.headers, INDEX_HEADER)
    if index:
        return _text(index)
    doc = orjson.loads(value)
    if not isinstance(doc, dict):
        raise orjson.JSONDecodeError("not a JSON object", "", 0)
    return index_for(doc, prefix)


class InFlight:
    """The index agent's running bulk requests, and how they end when the worker stops."""

    def __init__(self) -> None:
        self.tasks: deque[asyncio.Future] = deque()
        self.closing = False

    async def settle(self, timeout: float) -> None:
        """Start no new request; wait up to ``timeout`` for the running ones, cancel the rest.

        A finished request has acked its events; a cancelled one leaves them unacked, so their
        offsets are not committed and the next worker consumes them again."""
        self.closing = True
        if self.tasks:
            _done, pending = await asyncio.wait(list(self.tasks), timeout=timeout)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=1.0)


def register(
    app: Any,
    settings: Settings,
    topics: Topics,
    writer: BulkWriter,
    metrics: Metrics = METRICS,
    *,
    in_flight: InFlight | None = None,
) -> Any:
    prefix = writer.prefix
    running = in_flight or InFlight()

    async def index_batch(events: list[Any], items: list[tuple[str, str, bytes]]) -> None:
        by_id = {doc_id: event for (doc_id, _, _), event in zip(items, events, strict=False)}
        for item in await writer.write_encoded(items):
            reason = f"{item.status} {item.error_type}: {item.reason}"
            await _dead_letter(topics, metrics, by_id[item.doc_id], reason)
        for event in events:
            _release(event)

    @app.agent(topics.events, name="index", concurrency=1)
    async def index(stream: Any) -> Any:
        in_flight = running.tasks
        try:
            async for events in stream.take_events(settings.bulk_size, settings.bulk_max_latency_s):
                for event in events:
                    event.message.incref(HELD)
                # room for this request; a finished one raises here what it raised
                while in_flight and (len(in_flight) >= MAX_IN_FLIGHT or in_flight[0].done()):
                    await _finished(in_flight[0])
                    in_flight.popleft()
                if running.closing:
                    # the worker is stopping: held and never released, so not committed (the
                    # next worker consumes them again)
                    continue
                good: list[Any] = []
                items: list[tuple[str, str, bytes]] = []
                for event in events:
                    try:
                        index_name = index_of(event, prefix)
                    except ValueError as exc:
                        await _dead_letter(topics, metrics, event, f"not JSON: {exc}")
                        _release(event)
                        continue
                    good.append(event)
                    items.append((doc_id_of(event), index_name, event.value))
                in_flight.append(asyncio.ensure_future(index_batch(good, items)))
        finally:
            for task in in_flight:
                task.cancel()
            in_flight.clear()

    return index


async def _finished(task: asyncio.Future) -> None:
    """Wait for a bulk request; raise what it raised unless ``settle`` cancelled it."""
    await asyncio.wait((task,))
    if not task.cancelled():
        task.result()


def _release(event: Any) -> None:
    for _ in range(HELD):
        event.ack()


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
