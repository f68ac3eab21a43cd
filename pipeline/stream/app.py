"""The Faust application of the worker: topics, the correlation table, the agents, /metrics.

``create_app(settings)`` builds everything from one Settings object; ``run_worker`` runs it
without Faust's own command-line parsing. The web server (and ``/metrics``, the project's
metrics) binds ``web_bind:web_port``. Faust's own sensors (its monitor) are detached once the
app starts: they cost several label look-ups and dict updates per event, and nothing reads
them; consumer lag is reported by a timer instead.
"""

from __future__ import annotations

import gc
import importlib.util
import logging
from typing import Any

from pipeline import kafka_config
from pipeline.errors import ConfigError
from pipeline.metrics import METRICS, Metrics, update_consumer_lag
from pipeline.settings import Settings
from pipeline.sinks import es_auth
from pipeline.sinks.elasticsearch import BulkWriter, make_client
from pipeline.stream import index, process
from pipeline.stream.processing import Processor
from pipeline.stream.topics import Topics, declare

CORRELATION_TABLE = "correlation"
ROLES = ("all", "process", "index")
LAG_INTERVAL_S = 5.0
GC_THRESHOLD = 50_000


def _broker_credentials(settings: Settings) -> Any:
    return kafka_config.faust_broker_credentials(settings)


def create_app(
    settings: Settings,
    *,
    metrics: Metrics = METRICS,
    with_metrics_endpoint: bool = True,
    es_client: Any = None,
) -> Any:
    import faust

    role = settings.worker_role
    if role not in ROLES:
        raise ConfigError(f"setting worker_role must be one of {', '.join(ROLES)}, got {role!r}")
    # Each role is its own consumer group (and changelog namespace): Faust assumes every
    # member of a group runs the same agents.
    app_id = settings.worker_id if role == "all" else f"{settings.worker_id}-{role}"
    worker_dir = settings.worker_dir / role
    worker_dir.mkdir(parents=True, exist_ok=True)
    app = faust.App(
        app_id,
        broker=[f"kafka://{h}" for h in settings.kafka_bootstrap.split(",")],
        broker_credentials=_broker_credentials(settings),
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
        broker_commit_every=max(10_000, settings.bulk_size),
        broker_commit_interval=2.8,
        broker_session_timeout=settings.worker_session_timeout_s,
        broker_heartbeat_interval=min(3.0, settings.worker_session_timeout_s / 3),
        stream_buffer_maxsize=max(1024, settings.bulk_size),
        # Faust would wait, on SIGTERM and on every rebalance, until each event a stream took
        # is acked; the index agent acks only once Elasticsearch has the event, so with
        # Elasticsearch away the worker never stopped. Events are idempotent (document ids):
        # not waiting only means the unacked ones are consumed again. The index agent's
        # running requests get a short grace at shutdown instead (index.InFlight.settle).
        stream_wait_empty=False,
        # Events are ~5 kB: the default 1 MB per partition and fetch is ~200 events, which
        # capped the index agent at ~500 events/s; more costs RSS (prefetch per partition).
        consumer_max_fetch_size=4 * 1024 * 1024,
        table_cleanup_interval=settings.correlation_window_s,
        web_enabled=True,
    )
    topics: Topics = declare(app, settings)
    parts: dict[str, Any] = {"topics": topics}
    app.decryptscope = parts
    if role in ("all", "process"):
        table = app.Table(
            CORRELATION_TABLE,
            default=None,
            partitions=settings.topic_partitions,
            key_type=str,
            help="Correlation entries of pipeline.correlate, keyed serial:sessionid",
        )
        processor = Processor(settings, metrics=metrics)
        parts.update(table=table, processor=processor)
        process.register(app, settings, topics, table, processor, metrics=metrics)
    if role in ("all", "index"):
        writer = BulkWriter(es_client or make_client(settings), settings, metrics=metrics)
        in_flight = index.InFlight()
        parts.update(writer=writer, in_flight=in_flight)
        index.register(app, settings, topics, writer, metrics, in_flight=in_flight)
        if importlib.util.find_spec("pipeline.stream.spikes") is not None:
            from pipeline.stream import spikes

            spikes.register(app, settings, topics.events_json, topics.alerts_json, metrics=metrics)

        @app.on_before_shutdown.connect
        async def _close_es(app: Any, **_kwargs: Any) -> None:
            # after the consumer stopped and before the agents stop and the last commit:
            # running bulk requests finish (their offsets are committed) or are abandoned
            await in_flight.settle(index.STOP_GRACE_S)
            await writer.client.close()

    if with_metrics_endpoint:
        _serve_metrics(app, metrics)

    @app.task
    async def _detach_faust_sensors() -> None:
        for sensor in list(app.sensors):
            app.sensors.remove(sensor)

    known_topics = frozenset({settings.topic_raw, settings.topic_events})

    @app.timer(interval=LAG_INTERVAL_S)
    async def _report_lag() -> None:
        update_consumer_lag(metrics, app.consumer, known_topics)

    return app


def _serve_metrics(app: Any, metrics: Metrics, pattern: str = "/metrics") -> None:
    """``metrics.registry`` on the Faust web server."""
    from faust.web import Request, Response, View
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    @app.page(pattern)
    async def metrics_page(self: View, request: Request) -> Response:
        return self.bytes(
            generate_latest(metrics.registry), content_type=CONTENT_TYPE_LATEST.split(";")[0]
        )


def run_worker(settings: Settings, *, loglevel: str = "WARNING") -> int:
    """Run a worker until SIGTERM/SIGINT (Faust's Worker handles both and shuts down)."""
    import faust

    kafka_config.preflight(settings, "worker")
    client = make_client(settings, asynchronous=False)
    try:
        es_auth.preflight(client, settings, "worker", reachable=False)
    finally:
        client.close()
    app = create_app(settings)
    level = loglevel.upper()
    # aiokafka logs at debug level on every send; an explicit level keeps that off the hot
    # path whatever the root logger says.
    for name in ("faust", "mode", "aiokafka", "kafka"):
        logging.getLogger(name).setLevel(level)
    # The correlation table and Faust hold many long-lived containers; the default gen-0
    # threshold (700 allocations) has the collector walk young objects thousands of times a
    # second at full rate. Startup objects are frozen out of collections altogether.
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_THRESHOLD, 20, 20)
    worker = faust.Worker(app, loglevel=level, quiet=True)
    worker.execute_from_commandline()
    return 0
