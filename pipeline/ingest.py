"""``decryptscope ingest``: syslog listeners -> Kafka ``panos.raw``, with ``/metrics``.

Runs until SIGTERM or SIGINT, then stops accepting, publishes what the connections still held
and waits for Kafka to acknowledge everything buffered before exiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from typing import Any

from pipeline import kafka_config
from pipeline.metrics import METRICS, Metrics
from pipeline.settings import Settings
from pipeline.syslog.listeners import SyslogServer
from pipeline.syslog.publisher import Publisher
from pipeline.syslog.spool import Spool, SpoolingPublisher

SHUTDOWN_FLUSH_S = 60.0


async def serve(
    settings: Settings,
    *,
    metrics: Metrics = METRICS,
    stop: asyncio.Event | None = None,
    ready: asyncio.Event | None = None,
) -> SyslogServer:
    """Run the listeners until ``stop`` is set (or a signal arrives); returns the server."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        # not possible off the main thread (tests): the caller sets ``stop`` then
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop.set)
    await asyncio.to_thread(kafka_config.preflight, settings, "ingest")
    publisher = _publisher(settings)
    await asyncio.to_thread(publisher.start_producer)
    recovered = publisher.start()
    if recovered:
        print(
            f"decryptscope ingest: publishing {recovered} messages left in the spool "
            f"{settings.spool_dir} by the previous run",
            file=sys.stderr,
            flush=True,
        )
    server = SyslogServer(settings, publisher, metrics)
    await server.start()
    gauge = metrics.ingest_buffer_bytes
    if ready is not None:
        ready.set()
    print(
        "decryptscope ingest: listening "
        + ", ".join(f"{k}://{h}:{p}" for k, (h, p) in server.addresses.items())
        + f" -> {settings.kafka_bootstrap} {publisher.topic}",
        file=sys.stderr,
        flush=True,
    )
    try:
        while not stop.is_set():
            gauge.set(publisher.buffered)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=1.0)
    finally:
        await server.stop()
        drained = await publisher.close(SHUTDOWN_FLUSH_S)
        gauge.set(publisher.buffered)
        if not drained:
            print(
                f"decryptscope ingest: {publisher.buffered} bytes not acknowledged by Kafka "
                "at shutdown",
                file=sys.stderr,
            )
        received = server.stats.received
        print(
            f"decryptscope ingest: stopped; accepted {sum(received.values())} messages "
            f"(udp {received['udp']}, tcp {received['tcp']}, tls {received['tls']}), "
            f"{publisher.stats.published} acknowledged by Kafka",
            file=sys.stderr,
            flush=True,
        )
    return server


def _publisher(settings: Settings) -> Any:
    """The Kafka publisher, behind the disk spool when ``spool_dir`` is set."""
    publisher = Publisher(settings)
    if not settings.spool_dir:
        return publisher
    return SpoolingPublisher(publisher, Spool(settings.spool_dir, settings.spool_max_bytes))
