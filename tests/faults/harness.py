"""What the fault scenarios share (the tests in this folder and ``bench/faults.py``): a stack of
their own, a pipeline (setup, ingest, workers) whose processes can be killed and restarted one
by one, uniquely numbered events, a sender that keeps sending while things break, and the
check that Elasticsearch and the dead-letter topic hold exactly the events sent."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import secrets
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import orjson

from pipeline.commands import replay
from pipeline.commands.demo import SAMPLE
from pipeline.settings import Settings
from pipeline.stack import procs
from pipeline.stack.layout import Layout
from tests.harness import isolated_settings, settings_env, spawn

FAULT_COMPONENTS = ("kafka", "elasticsearch")
SERIAL = "012801096514"
_ACCEPTED = re.compile(rb"stopped; accepted (\d+) messages")


# --- the stack --------------------------------------------------------------------------------
def fault_stack_settings(base: Settings, cache_dir: Path, first_offset: int = 21_000) -> Settings:
    """Every stack port moved to a free block, its own cache dir (the shared stack is left
    alone). The tests and the benchmark search from different offsets so that both can run."""
    from pipeline.stack import components

    names = [n for c in FAULT_COMPONENTS for n in components.PORTS[c]]
    for offset in range(first_offset, first_offset + 20_000, 1_000):
        if all(procs.port_bindable(base.stack_host, getattr(base, n) + offset) for n in names):
            moved = {n: getattr(base, n) + offset for n in names}
            s = dataclasses.replace(base, cache_dir=cache_dir, **moved)
            return dataclasses.replace(
                s,
                kafka_bootstrap=f"{s.stack_host}:{s.kafka_port}",
                es_url=f"http://{s.stack_host}:{s.es_port}",
            )
    raise RuntimeError("no free block of ports for the fault stack")


def server_pid(settings: Settings, name: str) -> int:
    state = procs.read_state(Layout(settings.cache_dir, settings.es_user).state(name))
    if state is None:
        raise RuntimeError(f"{name} of the fault stack is not running")
    return state.pid


def kill_server(settings: Settings, name: str, sig: int = signal.SIGKILL) -> None:
    os.killpg(server_pid(settings, name), sig)


# --- events ---------------------------------------------------------------------------------
def _template() -> list[bytes]:
    for line in replay.read_lines([SAMPLE]):
        if b",TRAFFIC," in line and SERIAL.encode() in line:
            return line.replace(b",decrypt-error,", b",tcp-fin,").split(b",")
    raise RuntimeError("no TRAFFIC line in the demo sample")


_FIELDS = _template()


def event_line(n: int, run: int) -> bytes:
    """A valid TRAFFIC end log, unique by ``run`` and ``n`` (session id and sequence number)."""
    fields = list(_FIELDS)
    fields[22] = b"%d" % (run * 10_000_000 + n)
    fields[39] = b"%d" % (run * 10_000_000 + n)
    return b",".join(fields)


def event_id(n: int, run: int) -> str:
    return f"{SERIAL}:TRAFFIC:{run * 10_000_000 + n}"


# --- the pipeline ---------------------------------------------------------------------------
@dataclass
class Pipeline:
    """setup, ``ingest`` and N ``worker`` processes on the fault stack, each killable."""

    settings: Settings
    folder: Path
    run: int
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)
    restarts: dict[str, int] = field(default_factory=dict)
    created: ClassVar[list[Pipeline]] = []  # every pipeline made, for cleanup

    @classmethod
    def create(cls, stack: Settings, folder: Path, name: str, **changes: Any) -> Pipeline:
        tag = f"f{secrets.token_hex(3)}-{name}"
        settings = isolated_settings(
            stack,
            tag,
            folder / "worker",
            **{
                "topic_partitions": 4,
                "batch_max_wait_s": 0.5,
                "bulk_backoff_max_s": 5.0,
                **changes,
            },
        )
        folder.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(
            [sys.executable, "-m", "pipeline", "setup"],
            env=settings_env(settings), capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"setup failed: {done.stderr[-2000:]}")
        pipeline = cls(settings, folder, run=int.from_bytes(secrets.token_bytes(2)) % 9000 + 1000)
        cls.created.append(pipeline)
        return pipeline

    def log(self, name: str) -> Path:
        return self.folder / f"{name}.log"

    def _spawn(self, name: str, args: list[str], settings: Settings) -> None:
        self.procs[name] = spawn(args, settings, self.log(name))

    def start_ingest(self, spool: Path | None = None) -> None:
        args = ["ingest"] + (["--spool", str(spool)] if spool else [])
        self._spawn("ingest", args, self.settings)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            self.check_alive("ingest")
            with contextlib.suppress(OSError):
                socket.create_connection(("127.0.0.1", self.settings.syslog_tcp_port), 1).close()
                return
            time.sleep(0.2)
        raise RuntimeError(f"ingest did not listen:\n{self.tail('ingest')}")

    def start_worker(self, index: int = 0) -> None:
        s = dataclasses.replace(
            self.settings,
            web_port=self.settings.web_port + index,
            worker_data_dir=f"{self.settings.worker_data_dir}-{index}",
        )
        self._spawn(f"worker{index}", ["worker"], s)

    def kill(self, name: str, sig: int = signal.SIGKILL) -> int | None:
        proc = self.procs[name]
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            return proc.wait(90)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            return proc.wait(30)

    def restart(self, name: str, **kwargs: Any) -> None:
        self.restarts[name] = self.restarts.get(name, 0) + 1
        if name == "ingest":
            self.start_ingest(**kwargs)
        else:
            self.start_worker(int(name.removeprefix("worker")))

    def alive(self, name: str) -> bool:
        return self.procs[name].poll() is None

    def check_alive(self, *names: str) -> None:
        for name in names or tuple(self.procs):
            if not self.alive(name):
                raise RuntimeError(
                    f"{name} exited with {self.procs[name].returncode}:\n{self.tail(name)}"
                )

    def tail(self, name: str, size: int = 3000) -> str:
        path = self.log(name)
        return path.read_text(errors="replace")[-size:] if path.exists() else ""

    def accepted_at_exit(self) -> int:
        """The count ``ingest`` printed when it stopped."""
        found = _ACCEPTED.findall(self.log("ingest").read_bytes())
        if not found:
            raise RuntimeError(f"ingest printed no final count:\n{self.tail('ingest')}")
        return int(found[-1])

    def stop(self, timeout: float = 60.0) -> None:
        """SIGTERM everything still running, SIGKILL what has not exited after ``timeout``."""
        running = [proc for proc in self.procs.values() if proc.poll() is None]
        for proc in running:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for proc in running:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(30)

    def lines(self, start: int, stop: int) -> list[bytes]:
        return [event_line(n, self.run) for n in range(start, stop)]

    def ids(self, start: int, stop: int) -> set[str]:
        return {event_id(n, self.run) for n in range(start, stop)}


def _peer_closed(sock: socket.socket) -> bool:
    """Whether the other end sent FIN (what a relay checks before each write)."""
    readable, _, _ = select.select([sock], [], [], 0)
    return bool(readable) and sock.recv(1, socket.MSG_PEEK) == b""


class Sender(threading.Thread):
    """Sends numbered events over TCP at ``rate`` per second; ``sent`` is how many the socket
    took. Stops at the end, on ``stop()``, when ingest half-closes the connection (it is
    stopping), or when the connection breaks (``error``)."""

    def __init__(self, pipeline: Pipeline, start: int, stop: int, rate: float) -> None:
        super().__init__(daemon=True)
        self.pipeline = pipeline
        self.first, self.last, self.rate = start, stop, rate
        self.sent = 0
        self.error: BaseException | None = None
        self._halt = threading.Event()

    def run(self) -> None:
        s = self.pipeline.settings
        burst = max(1, int(self.rate / 20))
        started = time.monotonic()
        try:
            sock = socket.create_connection(("127.0.0.1", s.syslog_tcp_port), timeout=120)
            with sock:
                n = self.first
                while n < self.last and not self._halt.is_set():
                    if _peer_closed(sock):  # ingest is stopping: stop as rsyslog would
                        break
                    upto = min(self.last, n + burst)
                    sock.sendall(b"".join(line + b"\n" for line in self.pipeline.lines(n, upto)))
                    self.sent += upto - n
                    n = upto
                    ahead = self.sent / self.rate - (time.monotonic() - started)
                    if ahead > 0:
                        time.sleep(ahead)
                sock.shutdown(socket.SHUT_WR)
                sock.settimeout(120)
                while sock.recv(4096):  # ingest closes once it has read everything
                    pass
        except OSError as exc:
            self.error = exc

    def stop(self) -> None:
        self._halt.set()

    def wait_sent(self, count: int, timeout: float = 600) -> None:
        deadline = time.monotonic() + timeout
        while self.sent < count and self.is_alive() and time.monotonic() < deadline:
            time.sleep(0.05)


def send_all(pipeline: Pipeline, start: int, stop: int, rate: float = 5000) -> None:
    sender = Sender(pipeline, start, stop, rate)
    sender.start()
    sender.join()
    if sender.error is not None:
        raise sender.error


# --- the outcome ----------------------------------------------------------------------------
def es_client(settings: Settings) -> Any:
    from elasticsearch import Elasticsearch

    return Elasticsearch(settings.es_url, request_timeout=60)


def indexed_events(settings: Settings) -> list[str]:
    """``serial:TYPE:seqno`` of every document in every daily index of the prefix, read from
    the documents themselves (one entry per document: the same event indexed into two daily
    indices appears twice, which ids alone would not show)."""
    from elasticsearch import helpers

    client = es_client(settings)
    fields = ["observer.serial_number", "panw.panos.type", "panw.panos.sequence_number"]
    try:
        client.indices.refresh(index=f"{settings.index_prefix}-*")
        out = []
        for hit in helpers.scan(
            client, index=f"{settings.index_prefix}-*", _source=fields, size=5000
        ):
            source = hit["_source"]
            panos = source.get("panw", {}).get("panos", {})
            serial = source.get("observer", {}).get("serial_number")
            out.append(f"{serial}:{panos.get('type')}:{panos.get('sequence_number')}")
        return out
    finally:
        client.close()


def wait_indexed(settings: Settings, count: int, timeout: float, alive: Callable[[], None]) -> int:
    """Poll the document count until ``count`` (or ``timeout``); returns the last count."""
    client = es_client(settings)
    deadline = time.monotonic() + timeout
    seen = -1
    try:
        while time.monotonic() < deadline:
            alive()
            with contextlib.suppress(Exception):
                client.indices.refresh(index=settings.index_prefix)
                seen = client.count(index=settings.index_prefix)["count"]
                if seen >= count:
                    return seen
            time.sleep(1.0)
        return seen
    finally:
        client.close()


def dead_letters(settings: Settings) -> list[dict]:
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(
        settings.topic_dlq,
        bootstrap_servers=settings.kafka_bootstrap,
        auto_offset_reset="earliest",
        consumer_timeout_ms=5000,
    )
    try:
        return [orjson.loads(m.value) for m in consumer]
    finally:
        consumer.close()


@dataclass(frozen=True)
class Outcome:
    sent: int
    indexed: int
    dead_lettered: int
    missing: int
    duplicated: int  # documents beyond one per event, across every daily index
    unexpected: int  # documents that are not one of the events sent


def outcome(settings: Settings, wanted: set[str]) -> Outcome:
    ids = indexed_events(settings)
    found = set(ids)
    letters = dead_letters(settings)
    return Outcome(
        sent=len(wanted),
        indexed=len(found & wanted),
        dead_lettered=len(letters),
        missing=len(wanted - found),
        duplicated=len(ids) - len(found),
        unexpected=len(found - wanted),
    )


def consumer_lag(settings: Settings) -> int:
    """Messages of ``panos.raw`` the worker group has not committed yet (from Kafka itself)."""
    from kafka import KafkaAdminClient, KafkaConsumer

    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    consumer = KafkaConsumer(bootstrap_servers=settings.kafka_bootstrap)
    try:
        committed = admin.list_group_offsets(settings.worker_id).get(settings.worker_id, {})
        raw = {tp: meta.offset for tp, meta in committed.items() if tp.topic == settings.topic_raw}
        ends = consumer.end_offsets(list(raw)) if raw else {}
        return sum(max(0, ends[tp] - offset) for tp, offset in raw.items())
    finally:
        consumer.close()
        admin.close()


def scrape(port: int) -> str:
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
        return answer.read().decode()


def metric_sum(exposition: str, name: str) -> float:
    total = 0.0
    for line in exposition.splitlines():
        if line.startswith(name) and (line[len(name)] in " {"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


@contextlib.contextmanager
def timed() -> Iterator[list[float]]:
    box = [time.monotonic()]
    yield box
    box[0] = time.monotonic() - box[0]
