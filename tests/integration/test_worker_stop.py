"""SIGTERM stops a worker mid-stream, even with its bulk requests stuck in Elasticsearch, and
nothing it had not indexed is lost: the next worker indexes every event, once.

The worker reaches the real Elasticsearch through a TCP relay that can stop passing requests
on, the way a hung or overloaded cluster leaves a bulk request without an answer."""

from __future__ import annotations

import contextlib
import dataclasses
import signal
import socket
import subprocess
import threading
import time
from urllib.parse import urlsplit

import pytest
from elasticsearch import helpers
from kafka import KafkaProducer

from pipeline.commands import replay
from pipeline.commands.setup import setup
from pipeline.wire import raw_key
from tests.harness import SAMPLE, Services, expected_ids, isolated_settings, wait_for_count

pytestmark = [pytest.mark.integration, pytest.mark.slow]

EVENTS = 3000
WARM_UP = 200  # indexed before Elasticsearch stops answering: the worker is consuming
# Liveness bound for the stop, not a speed figure (it stops in seconds).
STOP_WAIT_S = 20


class StallingRelay:
    """A TCP relay to ``host:port``; while stalled it holds what clients send."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.server = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.server.getsockname()[1]}"
        self.passing = threading.Event()
        self.passing.set()
        self.held = 0  # sends held back while stalled
        self.sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def stall(self) -> None:
        self.passing.clear()

    def resume(self) -> None:
        self.passing.set()

    def close(self) -> None:
        self.passing.set()
        for sock in [self.server, *self.sockets]:
            with contextlib.suppress(OSError):
                sock.close()

    def _accept(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                client, _ = self.server.accept()
                upstream = socket.create_connection(self.target)
                self.sockets += [client, upstream]
                threading.Thread(
                    target=self._pump, args=(client, upstream, True), daemon=True
                ).start()
                threading.Thread(
                    target=self._pump, args=(upstream, client, False), daemon=True
                ).start()

    def _pump(self, src: socket.socket, dst: socket.socket, gated: bool) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                if gated and not self.passing.is_set():
                    self.held += 1
                    self.passing.wait()
                dst.sendall(data)
        for sock in (src, dst):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


def traffic_lines(count: int) -> list[bytes]:
    """Valid TRAFFIC end logs, each its own session and sequence number."""
    fields = next(
        line.replace(b",decrypt-error,", b",tcp-fin,").split(b",")
        for line in replay.read_lines([SAMPLE])
        if b",TRAFFIC," in line
    )
    out = []
    for n in range(count):
        line = list(fields)
        line[22] = b"%d" % (300000 + n)
        line[39] = b"%d" % (7000000000000000000 + n)
        out.append(b",".join(line))
    return out


def publish(s, lines: list[bytes], rate: float = 0.0) -> None:
    """Lines onto the raw topic as ingest publishes them (key, headers)."""
    producer = KafkaProducer(bootstrap_servers=s.kafka_bootstrap, acks="all", linger_ms=10)
    try:
        for line in lines:
            headers = [("sender", b"127.0.0.1:514"), ("received_at", b"%d" % (time.time() * 1000))]
            producer.send(s.topic_raw, value=line, key=raw_key(line, "127.0.0.1"), headers=headers)
            if rate:
                time.sleep(1 / rate)
        producer.flush(60)
    finally:
        producer.close(10)


def wait_until(predicate, timeout: float, what: str, services: Services) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        services.check_alive()
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} within {timeout:.0f}s")
        time.sleep(0.1)


def test_sigterm_stops_a_worker_with_a_stuck_bulk_and_the_next_indexes_all(
    settings, run_prefix, tmp_path, es_client
) -> None:
    es = urlsplit(settings.es_url)
    relay = StallingRelay(es.hostname or "127.0.0.1", es.port or 9200)
    s = isolated_settings(
        settings, f"{run_prefix}-stop", tmp_path / "worker", batch_size=200, batch_max_wait_s=0.3
    )
    assert setup(s) == 0
    lines = traffic_lines(EVENTS)
    wanted = expected_ids(lines)
    assert len(wanted) == EVENTS
    first = Services(dataclasses.replace(s, es_url=relay.url), tmp_path / "first")
    second = Services(s, tmp_path / "second")
    try:
        first.start(ingest=False)
        worker = first.procs["worker0"]
        publish(s, lines[:WARM_UP])
        assert wait_for_count(es_client, s.index_prefix, WARM_UP, timeout=180) == WARM_UP
        relay.stall()
        rest = threading.Thread(target=publish, args=(s, lines[WARM_UP:], 1000.0))
        rest.start()
        wait_until(lambda: relay.held > 0, 120, "no bulk request reached the relay", first)

        worker.send_signal(signal.SIGTERM)
        try:
            code = worker.wait(STOP_WAIT_S)
        except subprocess.TimeoutExpired:
            log = (tmp_path / "first" / "worker0.log").read_text(errors="replace")
            pytest.fail(
                f"the worker was still running {STOP_WAIT_S}s after SIGTERM:\n{log[-3000:]}"
            )
        assert code == 0, (tmp_path / "first" / "worker0.log").read_text()[-3000:]
        rest.join(120)
        relay.resume()

        second.start(ingest=False)
        assert wait_for_count(es_client, s.index_prefix, EVENTS, timeout=300) == EVENTS
        ids = [
            hit["_id"]
            for hit in helpers.scan(es_client, index=s.index_prefix, _source=False, size=1000)
        ]
        assert len(ids) == EVENTS
        assert set(ids) == wanted
        second.check_alive()
    finally:
        first.stop(30)
        second.stop(30)
        relay.close()
