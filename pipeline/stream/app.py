"""The Faust application of the worker: topics, tables, the batch agent, the spike agent,
timers and ``/metrics``.

``create_app(settings)`` builds everything from one Settings object; ``decryptscope worker``
(``pipeline.commands.worker``) runs it. Every worker runs the same agents; more workers in
the same group (``worker_id``) share the partitions. The web server binds
``web_bind:web_port`` and serves the project's metrics on ``/metrics``. Faust's own sensors
are detached once the app starts: they cost several label look-ups and dict updates per event
and nothing reads them; consumer lag is reported by a timer instead.
"""

from __future__ import annotations

import time
from typing import Any

import faust
import orjson
from faust.web import Request, Response, View
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from pipeline import changes, kafka_config, wire
from pipeline.chain import Chain, ChainConfig
from pipeline.ecs import index_name
from pipeline.metrics import METRICS, Metrics, observe_alert, prime_causes, update_consumer_lag
from pipeline.settings import Settings
from pipeline.sinks.elasticsearch import BulkWriter, make_client
from pipeline.stream import spikes, worker
from pipeline.stream.changes import ChangeRelay
from pipeline.stream.indexing import STOP_GRACE_S, InFlight
from pipeline.stream.tables import CorrelationTable
from pipeline.stream.topics import Topics, declare

CORRELATION_TABLE = "correlation"
LAG_INTERVAL_S = 5.0
# How often ended alert windows are flushed when no batch arrives (well under alert_grace_s).
WINDOW_FLUSH_S = 1.0
# How often the certificates' days-left buckets are counted again.
CERTIFICATES_S = 15.0


def create_app(
    settings: Settings,
    *,
    metrics: Metrics = METRICS,
    with_metrics_endpoint: bool = True,
    es_client: Any = None,
) -> Any:
    worker_dir = settings.worker_dir
    worker_dir.mkdir(parents=True, exist_ok=True)
    app = faust.App(
        settings.worker_id,
        broker=[f"kafka://{h}" for h in settings.kafka_bootstrap.split(",")],
        broker_credentials=kafka_config.faust_broker_credentials(settings),
        store="memory://",
        datadir=str(worker_dir),
        web_bind=settings.web_bind,
        web_port=settings.web_port,
        web_host=settings.web_bind,
        topic_partitions=settings.topic_partitions,
        topic_replication_factor=settings.topic_replication,
        topic_allow_declare=True,
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        # No compression here: on a small host the worker is CPU-bound and Kafka is near.
        producer_linger_ms=20,
        producer_max_batch_size=512 * 1024,
        broker_commit_every=max(10_000, settings.batch_size),
        broker_commit_interval=2.8,
        broker_session_timeout=settings.worker_session_timeout_s,
        broker_heartbeat_interval=min(3.0, settings.worker_session_timeout_s / 3),
        stream_buffer_maxsize=max(1024, settings.batch_size),
        # Faust would wait, on SIGTERM and on every rebalance, until each event a stream took
        # is acked; the batch agent acks only once Elasticsearch has the batch, so with
        # Elasticsearch away the worker never stopped. Events are idempotent (document ids):
        # not waiting only means the unacked ones are consumed again. Running bulk requests
        # get a short grace at shutdown instead (indexing.InFlight.settle).
        stream_wait_empty=False,
        consumer_max_fetch_size=4 * 1024 * 1024,
        web_enabled=True,
    )
    topics: Topics = declare(app, settings)
    table = app.Table(
        CORRELATION_TABLE,
        default=None,
        partitions=settings.topic_partitions,
        key_type=str,
        help="Correlation entries of pipeline.correlate, keyed serial:sessionid",
    )
    correlation = CorrelationTable(
        table,
        max_entries=settings.correlation_max_entries,
        window_s=settings.correlation_window_s,
    )
    chain = Chain(ChainConfig.from_settings(settings))
    prime_causes(metrics, chain.classifier.catalogue.labels())
    windows = spikes.FailureWindows(settings.alert_window_s)
    relay = ChangeRelay(settings, metrics)
    in_flight = InFlight()
    writer = None
    if settings.worker_index:
        writer = BulkWriter(es_client or make_client(settings), settings, metrics=metrics)
    parts: dict[str, Any] = {
        "topics": topics,
        "table": table,
        "correlation": correlation,
        "chain": chain,
        "windows": windows,
        "writer": writer,
        "in_flight": in_flight,
        "relay": relay,
    }
    app.decryptscope = parts
    raw_topic = settings.topic_raw

    def owned() -> Any:
        """Whether this worker owns a partition of the raw topic (and of the tables)."""
        mine = {tp.partition for tp in app.assignor.assigned_actives() if tp.topic == raw_topic}
        return mine.__contains__

    alerts_writer: list[BulkWriter] = []

    async def index_alerts(alerts: list[dict[str, Any]]) -> None:
        if not settings.alerts_index:
            return
        if not alerts_writer:
            alerts_writer.append(
                BulkWriter(make_client(settings), settings, index_prefix=settings.alerts_index)
            )
        await alerts_writer[0].write([(alert["id"], alert) for alert in alerts])

    async def raise_alerts(alerts: list[dict[str, Any]]) -> None:
        """Alerts a change raises at once: counted, on the alerts topic, in the alerts index."""
        for alert in alerts:
            observe_alert(metrics, alert["kind"], alert["cause"])
            topics.alerts.send_soon(key=alert["id"].encode(), value=wire.encode_alert(alert))
        await index_alerts(alerts)

    worker.register(
        app,
        settings,
        topics,
        chain=chain,
        correlation=correlation,
        windows=windows,
        owned=owned,
        writer=writer,
        in_flight=in_flight,
        metrics=metrics,
        relay=relay,
        raise_alerts=raise_alerts,
    )

    spikes.register(
        app,
        settings,
        topics.failure_counts,
        topics.alerts,
        index_alerts=index_alerts,
        metrics=metrics,
    )

    @app.on_before_shutdown.connect
    async def _settle(app: Any, **_kwargs: Any) -> None:
        # after the consumer stopped and before the agents stop and the last commit: running
        # bulk requests finish (their offsets are committed) or are abandoned
        await in_flight.settle(STOP_GRACE_S)
        if writer is not None:
            await writer.client.close()

    if with_metrics_endpoint:
        _serve_metrics(app, metrics)

    @app.task
    async def _detach_faust_sensors() -> None:
        for sensor in list(app.sensors):
            app.sensors.remove(sensor)

    known_topics = frozenset({settings.topic_raw})

    @app.timer(interval=LAG_INTERVAL_S)
    async def _report_lag() -> None:
        update_consumer_lag(metrics, app.consumer, known_topics)

    @app.timer(interval=WINDOW_FLUSH_S)
    async def _flush_windows() -> None:
        # Counts of ended windows go to the detector even when no batch comes.
        worker.send_counts(topics, windows.due(time.time()))

    @app.timer(interval=CERTIFICATES_S)
    async def _count_certificates() -> None:
        relay.refresh_certificates(time.time())

    @app.task
    async def _declared_changes() -> None:
        # The declared changes' documents (Grafana annotates them like the detected ones);
        # their ids are fixed, so every worker and every restart writes the same documents.
        if writer is None or not relay.declared:
            return
        documents = []
        for change in relay.declared:
            source = orjson.dumps(changes.to_ecs(change))
            documents.append(
                (change.id, index_name(change.time.isoformat(), settings.index_prefix), source)
            )
        await writer.write_encoded(documents)

    @app.timer(interval=max(1.0, settings.correlation_window_s / 4))
    async def _expire_sessions() -> None:
        is_owned = owned()
        correlation.expire(time.time(), is_owned)
        metrics.correlation_evicted.inc(correlation.evict(is_owned))
        metrics.correlation_entries.set(len(correlation))

    return app


def _serve_metrics(app: Any, metrics: Metrics, pattern: str = "/metrics") -> None:
    """``metrics.registry`` on the Faust web server."""

    @app.page(pattern)
    async def metrics_page(self: View, request: Request) -> Response:
        return self.bytes(
            generate_latest(metrics.registry), content_type=CONTENT_TYPE_LATEST.split(";")[0]
        )
