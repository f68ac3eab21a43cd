"""The worker's agent: ``panos.raw`` in batches through the chain, and everything it produced
out, once per batch.

Per batch (``batch_size`` messages or ``batch_max_wait_s``, whichever comes first):

1. ``pipeline.chain`` turns the messages and the correlation table into documents, dead
   letters, state changes, failures and counts (per-event work is the chain's);
2. the documents go to ``panos.events`` for SIEMs and the dead letters to ``panos.dlq``
   (buffered sends: Faust flushes its producer before it commits offsets);
3. the state changes go to the correlation table, each key once, with its source partition;
4. failures are added to this worker's alert windows, metrics are counted once per label;
   change points go to every detector and a change that alerts at once to the alerts topic
   (``pipeline.stream.changes``);
5. the documents are bulk-indexed into Elasticsearch while the next batch is processed (up to
   two requests in flight); the batch's events stay held until every document is indexed or
   dead-lettered, so an offset is committed only then (``pipeline.stream.indexing``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from pipeline import wire
from pipeline.chain import BatchResult, Chain, Counts, Message
from pipeline.metrics import Metrics, observe_batch
from pipeline.settings import Settings
from pipeline.sinks.elasticsearch import BulkWriter
from pipeline.stream.changes import ChangeRelay
from pipeline.stream.indexing import InFlight, hold, release
from pipeline.stream.spikes import FailureWindows
from pipeline.stream.tables import CorrelationTable
from pipeline.stream.topics import Topics


def to_message(event: Any) -> Message:
    """The chain's view of a Faust event: value, origin, and the headers it acts on."""
    message = event.message
    headers = event.headers
    cut = replay_of = None
    if headers:
        cut = wire.header(headers, wire.CUT_HEADER)
        replay_of = wire.header(headers, wire.REPLAY_HEADER)
    return Message(
        event.value,
        message.topic,
        message.partition,
        message.offset,
        cut.decode("utf-8", "replace") if cut is not None else None,
        replay_of.decode("utf-8", "replace") if replay_of is not None else None,
    )


def observe_counts(metrics: Metrics, counts: Counts, published: int) -> None:
    """Add one batch's counts to the metrics."""
    observe_batch(
        metrics,
        records=counts.records,
        end_reasons=counts.end_reasons,
        decrypted=counts.decrypted,
        failures=counts.failures,
        dead_letters=counts.dead_letters,
        parse_seconds=counts.parse_seconds,
        published=published,
    )


def send_counts(topics: Topics, counts: list[wire.WindowCount]) -> None:
    """Window counts to the spike detector, keyed by cause (one detector sees every worker's
    count of a cause)."""
    send = topics.failure_counts.send_soon
    for count in counts:
        send(key=count.cause.encode(), value=wire.encode_window_count(count))


def register(
    app: Any,
    settings: Settings,
    topics: Topics,
    *,
    chain: Chain,
    correlation: CorrelationTable,
    windows: FailureWindows,
    owned: Callable[[], Callable[[int], bool]],
    writer: BulkWriter | None,
    in_flight: InFlight,
    metrics: Metrics,
    clock: Callable[[], float] = time.time,
    relay: ChangeRelay | None = None,
    raise_alerts: Callable[[list[dict[str, Any]]], Any] | None = None,
) -> Any:
    """Add the batch agent to ``app``. ``writer`` None: publish to ``panos.events`` only (no
    Elasticsearch), e.g. where another consumer indexes. ``relay``: change points, coverage
    and certificates of each batch (``pipeline.stream.changes``); ``raise_alerts``: where the
    alerts a change raises at once go (the alerts topic and index)."""
    dlq_topic = topics.dlq

    producer = app.producer
    events_name = topics.events.get_topic_name()
    ocsf_name = topics.events_ocsf.get_topic_name() if topics.events_ocsf is not None else None
    dlq_name = dlq_topic.get_topic_name()
    doc_id_header = wire.DOC_ID_HEADER

    async def publish(result: BatchResult, batch: list[Any]) -> None:
        # Straight to the Kafka producer's batches (Faust's send_soon buffer takes one message
        # at a time); Faust flushes the producer before it commits offsets.
        send = producer.send
        for doc in result.documents:
            headers = [(doc_id_header, doc.doc_id.encode())]
            await send(events_name, doc.key, doc.source, None, None, headers=headers)
            if ocsf_name is not None and doc.ocsf is not None:
                await send(ocsf_name, doc.key, doc.ocsf, None, None, headers=headers)
        for position, letter in result.dead_letters:
            value = wire.encode_dead_letter(letter)
            await send(dlq_name, batch[position].key, value, None, None, headers=None)

    async def index(
        items: list[tuple[str, str, bytes]], positions: list[int], batch: list[Any]
    ) -> None:
        """Bulk-index (id, index, JSON) items; ``positions``: each one's message in the batch.
        Only what indexing needs is held while the request runs, not the parsed records."""
        assert writer is not None
        rejected = await writer.write_encoded(items)
        if rejected:
            origin = {item[0]: batch[at] for item, at in zip(items, positions, strict=True)}
            for item in rejected:
                event = origin[item.doc_id]
                letter = wire.dead_letter(
                    item.document,
                    stage="index",
                    error_type="sink",
                    message=f"{item.status} {item.error_type}: {item.reason}"[:2000],
                    topic=event.message.topic,
                    partition=event.message.partition,
                    offset=event.message.offset,
                )
                await dlq_topic.send(key=event.key, value=wire.encode_dead_letter(letter))
                metrics.dead_letters.labels("index", "sink").inc()
        release(batch)

    @app.agent(topics.raw, name="process", concurrency=1)
    async def process(stream: Any) -> Any:
        try:
            async for batch in stream.take_events(settings.batch_size, settings.batch_max_wait_s):
                hold(batch)
                await in_flight.room()
                if in_flight.closing:
                    # the worker is stopping: held and never released, so not committed (the
                    # next worker consumes them again)
                    continue
                now = clock()
                versions = relay.versions if relay is not None else None
                messages = [to_message(e) for e in batch]
                result = chain.run(messages, correlation.entries, now, versions)
                await publish(result, batch)
                if relay is not None:
                    alerts = relay.observe(result, now)
                    if result.changes:
                        relay.send(topics.failure_counts, result, now)
                    if alerts and raise_alerts is not None:
                        await raise_alerts(alerts)
                if result.state:
                    partitions = {
                        key: batch[position].message.partition
                        for key, position in result.writers.items()
                    }
                    await correlation.write(producer, result.state, partitions)
                    if len(correlation) > correlation.max_entries:
                        metrics.correlation_evicted.inc(correlation.evict(owned()))
                windows.add(result.failures, now)
                send_counts(topics, windows.due(now))
                observe_counts(metrics, result.counts, len(result.documents))
                if writer is not None and result.documents:
                    docs = result.documents
                    items = [(d.doc_id, d.index, d.source) for d in docs]
                    in_flight.start(index(items, [d.message for d in docs], batch))
                else:
                    release(batch)
                del result, messages  # the records go now, not when the next batch comes
        finally:
            in_flight.cancel()

    return process
