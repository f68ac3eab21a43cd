"""The fault scenarios, each a function of (fault stack settings, work folder, number of events,
send rate) that runs a pipeline on the fault stack, breaks something mid-stream, repairs it and
returns the outcome: what Elasticsearch and the dead-letter topic hold against what was sent.
The tests run them small; ``bench/faults.py`` runs them at volume and prints the table."""

from __future__ import annotations

import functools
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness import (
    Outcome,
    Pipeline,
    Sender,
    consumer_lag,
    kill_server,
    metric_sum,
    outcome,
    rss_bytes,
    scrape,
    send_all,
    wait_indexed,
)

from pipeline import stack as stack_mod
from pipeline.settings import Settings
from pipeline.syslog import spool as spool_mod
from tests.harness import expected_ids, wait_group

# The two-worker scenario's group session timeout: short, so the takeover shows in seconds.
SESSION_TIMEOUT_S = 15.0

# How long the drain after a repair may take, per event (plus a floor): generous on purpose,
# a slow machine must not fail the scenario, only show a longer recovery.
DRAIN_S_PER_EVENT = 0.02
DRAIN_FLOOR_S = 240.0


@dataclass
class Result:
    scenario: str
    outcome: Outcome
    recover_s: float  # from the fault until every event sent is indexed
    notes: dict[str, Any] = field(default_factory=dict)


def _quiet(_message: str) -> None:
    return None


def _stops_its_pipelines(scenario: Callable[..., Result]) -> Callable[..., Result]:
    """Whatever happens in the scenario, its processes do not outlive it."""

    @functools.wraps(scenario)
    def run(*args: Any, **kwargs: Any) -> Result:
        before = len(Pipeline.created)
        try:
            return scenario(*args, **kwargs)
        finally:
            for pipeline in Pipeline.created[before:]:
                pipeline.stop()

    return run


def _drain(p: Pipeline, total: int, started: float, *alive: str) -> float:
    timeout = DRAIN_FLOOR_S + DRAIN_S_PER_EVENT * total
    got = wait_indexed(p.settings, total, timeout, lambda: p.check_alive(*alive))
    if got < total:
        raise AssertionError(f"only {got} of {total} events indexed within {timeout:.0f}s")
    return time.monotonic() - started


def _finish(name: str, p: Pipeline, wanted: set[str], recover_s: float, **notes: Any) -> Result:
    result = Result(name, outcome(p.settings, wanted), recover_s, notes)
    p.stop()
    return result


@_stops_its_pipelines
def kafka_broker_sigkill(stack: Settings, folder: Path, events: int, rate: float) -> Result:
    """The broker dies (SIGKILL) a third of the way and is started again."""
    p = Pipeline.create(stack, folder, "kafka-kill")
    p.start_ingest()
    p.start_worker(0)
    sender = _stream(p, events, rate, until=events // 3)
    kill_server(stack, "kafka", signal.SIGKILL)
    fault = time.monotonic()
    time.sleep(3)
    stack_mod.up(stack, ["kafka"], say=_quiet)
    restored_s = time.monotonic() - fault
    _sent_all(sender)
    recover = _drain(p, events, fault, "ingest", "worker0")
    return _finish("Kafka broker SIGKILL, restarted", p, p.ids(0, events), recover,
                   broker_down_s=round(restored_s, 1))  # fmt: skip


@_stops_its_pipelines
def elasticsearch_stopped(
    stack: Settings, folder: Path, events: int, rate: float, down_s: float = 60.0
) -> Result:
    """Elasticsearch stops for ``down_s`` mid-stream: the worker backs off, lag builds up and
    drains; the worker's memory stays bounded."""
    p = Pipeline.create(stack, folder, "es-stop")
    p.start_ingest()
    p.start_worker(0)
    sender = _stream(p, events, rate, until=events // 3)
    worker_pid = p.procs["worker0"].pid
    rss_before = rss_bytes(worker_pid)
    errors_before = metric_sum(scrape(p.settings.web_port), "decryptscope_es_bulk_errors_total")
    stack_mod.down(stack, ["elasticsearch"], purge=False, say=_quiet)
    fault = time.monotonic()
    max_rss, max_lag, max_lag_metric = rss_before, 0, 0.0
    try:
        while time.monotonic() - fault < down_s:
            p.check_alive("ingest", "worker0")
            max_rss = max(max_rss, rss_bytes(worker_pid))
            max_lag = max(max_lag, consumer_lag(p.settings))
            # what an operator sees: the worker's own gauge, summed over topics and partitions
            exposition = scrape(p.settings.web_port)
            lag_metric = metric_sum(exposition, "decryptscope_consumer_lag_messages")
            max_lag_metric = max(max_lag_metric, lag_metric)
            time.sleep(2)
        errors_during = (
            metric_sum(scrape(p.settings.web_port), "decryptscope_es_bulk_errors_total")
            - errors_before
        )
    finally:
        stack_mod.up(stack, ["elasticsearch"], say=_quiet)
    _sent_all(sender)
    recover = _drain(p, events, fault, "ingest", "worker0")
    return _finish(
        f"Elasticsearch stopped {down_s:.0f} s", p, p.ids(0, events), recover,
        bulk_errors_while_down=errors_during,
        max_group_lag=max_lag,
        max_lag_metric=max_lag_metric,
        worker_rss_mib=(round(rss_before / 2**20), round(max_rss / 2**20)),
    )  # fmt: skip


@_stops_its_pipelines
def worker_sigkill(stack: Settings, folder: Path, events: int, rate: float) -> Result:
    """The worker dies (SIGKILL) mid-batch and is started again; the correlation entry of a
    session seen before the kill is back from the table's changelog after it."""
    traffic, decryption = _joined_pair()
    # the session's entry must outlive the kill, the restart and the stream in between: every
    # numbered event is a session of its own, so the table must also hold more than them all
    # (at the default cap the oldest entry, this one, is evicted once ``events`` reaches it)
    p = Pipeline.create(
        stack, folder, "worker-kill",
        correlation_window_s=3600.0, correlation_max_entries=2 * events + 10_000,
    )  # fmt: skip
    p.start_ingest()
    p.start_worker(0)
    _send_raw(p, [traffic])
    pair_ids = expected_ids([traffic, decryption])
    traffic_id = next(iter(expected_ids([traffic])))
    # the TRAFFIC line is in the table (and its changelog) once its document is indexed
    wait_indexed(p.settings, 1, 120, lambda: p.check_alive("worker0"))
    sender = _stream(p, events, rate, until=events // 3)
    p.kill("worker0", signal.SIGKILL)
    fault = time.monotonic()
    p.restart("worker0")
    _sent_all(sender)
    _send_raw(p, [decryption])
    recover = _drain(p, events + len(pair_ids), fault, "ingest", "worker0")
    joined = _correlation_count(p, traffic_id)
    return _finish("worker SIGKILL mid-batch, restarted", p, p.ids(0, events) | pair_ids,
                   recover, correlation_count_after_restart=joined)  # fmt: skip


@_stops_its_pipelines
def ingest_sigterm(stack: Settings, folder: Path, events: int, rate: float) -> Result:
    """ingest gets SIGTERM mid-stream: it publishes everything it accepted, then exits 0; the
    rest is sent to a new ingest."""
    p = Pipeline.create(stack, folder, "ingest-term")
    p.start_ingest()
    p.start_worker(0)
    sender = _stream(p, events, rate, until=events // 2)
    code = p.kill("ingest", signal.SIGTERM)
    fault = time.monotonic()
    sender.stop()
    sender.join()
    assert code == 0, p.tail("ingest")
    accepted = p.accepted_at_exit()
    got = wait_indexed(p.settings, accepted, DRAIN_FLOOR_S, lambda: p.check_alive("worker0"))
    flushed = outcome(p.settings, p.ids(0, accepted))
    p.restart("ingest")
    send_all(p, accepted, events, rate)
    recover = _drain(p, events, fault, "ingest", "worker0")
    return _finish("ingest SIGTERM mid-stream", p, p.ids(0, events), recover,
                   accepted_before_stop=accepted, indexed_of_accepted=min(got, accepted),
                   missing_of_accepted=flushed.missing)  # fmt: skip


@_stops_its_pipelines
def ingest_sigkill_with_spool(stack: Settings, folder: Path, events: int, rate: float) -> Result:
    """ingest runs with ``--spool``; Kafka stalls (SIGSTOP) so accepted messages pile up
    unacknowledged, then ingest is SIGKILLed. The new ingest publishes the spool: nothing it
    had accepted is lost."""
    p = Pipeline.create(stack, folder, "ingest-kill", ingest_buffer_bytes=2 * 1024 * 1024)
    spool_dir = folder / "spool"
    p.start_ingest(spool=spool_dir)
    p.start_worker(0)
    sender = _stream(p, events, rate, until=events // 3)
    kill_server(stack, "kafka", signal.SIGSTOP)
    try:
        time.sleep(5)
        p.kill("ingest", signal.SIGKILL)
        fault = time.monotonic()
        sender.stop()
        sender.join()
        spooled = spool_mod.pending_records(spool_dir)
    finally:
        kill_server(stack, "kafka", signal.SIGCONT)
    by_line = {line: n for n, line in enumerate(p.lines(0, events))}
    numbers = sorted(by_line[r.value] for r in spooled)
    accepted = numbers[-1] + 1 if numbers else 0
    p.restart("ingest", spool=spool_dir)
    send_all(p, accepted, events, rate)
    recover = _drain(p, events, fault, "ingest", "worker0")
    return _finish("ingest SIGKILL with --spool", p, p.ids(0, events), recover,
                   spooled_at_kill=len(set(numbers)), accepted_before_kill=accepted)  # fmt: skip


@_stops_its_pipelines
def worker_of_two_sigkill(stack: Settings, folder: Path, events: int, rate: float) -> Result:
    """Two workers share the partitions; one dies (SIGKILL) and is not restarted: the other
    takes its partitions over once the group's session timeout has passed."""
    p = Pipeline.create(stack, folder, "two-workers", worker_session_timeout_s=SESSION_TIMEOUT_S)
    p.start_ingest()
    p.start_worker(0)
    p.start_worker(1)
    if wait_group(p.settings, 2, 180) == float("inf"):
        raise AssertionError("the two workers did not form a stable group within 180 s")
    sender = _stream(p, events, rate, until=events // 3)
    p.kill("worker1", signal.SIGKILL)
    fault = time.monotonic()
    # the dead member's heartbeats stop; the coordinator drops it after the session timeout
    # and the survivor rejoins with every partition
    takeover = wait_group(p.settings, 1, SESSION_TIMEOUT_S + 120)
    p.check_alive("worker0")
    _sent_all(sender)
    recover = _drain(p, events, fault, "ingest", "worker0")
    return _finish("1 of 2 workers SIGKILL, not restarted", p, p.ids(0, events), recover,
                   takeover_s=round(takeover, 1), session_timeout_s=SESSION_TIMEOUT_S)  # fmt: skip


SCENARIOS: dict[str, Callable[..., Result]] = {
    "kafka-kill": kafka_broker_sigkill,
    "es-stop": elasticsearch_stopped,
    "worker-kill": worker_sigkill,
    "ingest-term": ingest_sigterm,
    "ingest-kill-spool": ingest_sigkill_with_spool,
    "worker-of-two-kill": worker_of_two_sigkill,
}


# --- helpers -------------------------------------------------------------------------------
def _stream(p: Pipeline, events: int, rate: float, until: int) -> Sender:
    """Events 1..``events`` sent in the background at ``rate``, after event 0 went through;
    returns once ``until`` of them are sent, the moment to strike."""
    _warm(p)
    sender = Sender(p, 1, events, rate)
    sender.start()
    sender.wait_sent(until)
    return sender


def _sent_all(sender: Sender) -> None:
    sender.join()
    assert sender.error is None, sender.error


def _warm(p: Pipeline) -> None:
    """Faults strike a running stream: event 0 goes through before the stream starts."""
    send_all(p, 0, 1)
    if wait_indexed(p.settings, 1, 180, p.check_alive) < 1:
        raise AssertionError("the pipeline indexed nothing within 180 s")


def _joined_pair() -> tuple[bytes, bytes]:
    from pipeline.commands import replay

    path = Path(__file__).resolve().parents[1] / "golden" / "diagnosis" / "decrypt-error-joined.log"
    traffic, decryption = replay.read_lines([path])
    return traffic, decryption


def _send_raw(p: Pipeline, lines: list[bytes]) -> None:
    import socket

    with socket.create_connection(("127.0.0.1", p.settings.syslog_tcp_port), 30) as sock:
        sock.sendall(b"".join(line + b"\n" for line in lines))
        sock.shutdown(socket.SHUT_WR)
        sock.settimeout(30)
        while sock.recv(4096):
            pass


def _correlation_count(p: Pipeline, doc_id: str) -> int:
    from harness import es_client

    client = es_client(p.settings)
    try:
        client.indices.refresh(index=p.settings.index_prefix)
        hits = client.search(
            index=p.settings.index_prefix, query={"ids": {"values": [doc_id]}}, size=1
        )["hits"]["hits"]
    finally:
        client.close()
    if not hits:
        return 0
    return int(hits[0]["_source"].get("decryptscope", {}).get("correlation", {}).get("count", 1))
