"""``decryptscope demo``: the whole pipeline on the local stack, on bundled sample traffic.

Brings the stack up, runs setup, starts ``ingest`` and a ``worker`` as subprocesses, replays
``deploy/demo/sample-traffic.log`` (one session per cause of the catalogue, some sessions that
are not failures, two lines that are not PAN-OS logs), waits until every event is searchable
and prints the diagnosis summary from an Elasticsearch aggregation. ``--keep`` leaves ingest and
the worker running; otherwise they are stopped (the stack stays up: ``stack down`` stops it).

``Services`` (start ingest and a worker with given settings, wait, stop) also serves the
end-to-end tests and the benchmark.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from pipeline.errors import StackError
from pipeline.resources import DEPLOY
from pipeline.settings import ENV_PREFIX, Settings

SAMPLE = DEPLOY / "demo" / "sample-traffic.log"


def settings_env(settings: Settings, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment that gives a subprocess exactly these settings (secrets included: the
    environment of a child process is not a log)."""
    env = dict(os.environ if base is None else base)
    for f in dataclasses.fields(settings):
        value = getattr(settings, f.name)
        if isinstance(value, tuple):
            value = ",".join(value)
        env[f"{ENV_PREFIX}{f.name.upper()}"] = str(value)
    env.pop(f"{ENV_PREFIX}CONFIG", None)
    return env


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def isolated_settings(base: Settings, tag: str, worker_dir: Path, **overrides: Any) -> Settings:
    """``base`` for one pipeline of its own: topics, indices and worker id named after ``tag``,
    free loopback ports for the listeners and metrics, the worker's state in ``worker_dir``.
    Tests and benchmarks run such pipelines side by side on one stack."""
    own: dict[str, Any] = {
        "worker_id": tag,
        "index_prefix": f"{tag}-events",
        "alerts_index": f"{tag}-alerts",
        "topic_raw": f"{tag}.raw",
        "topic_events": f"{tag}.events",
        "topic_alerts": f"{tag}.alerts",
        "topic_dlq": f"{tag}.dlq",
        "topic_partitions": 2,
        "syslog_udp_port": free_port(socket.SOCK_DGRAM),
        "syslog_tcp_port": free_port(),
        "syslog_tls_port": free_port(),
        "ingest_metrics_port": free_port(),
        "web_port": free_port(),
        "worker_data_dir": str(worker_dir),
    }
    own.update(overrides)
    return dataclasses.replace(base, **own)


def spawn(args: list[str], settings: Settings, log: Path) -> subprocess.Popen:
    """``python -m pipeline <args>`` with ``settings`` in its environment, in a session of its
    own (signals reach it alone), output appended to ``log``."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "pipeline", *args],
            env=settings_env(settings),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


class Services:
    """``decryptscope ingest`` and ``decryptscope worker`` as child processes."""

    def __init__(
        self, settings: Settings, log_dir: Path, *, roles: tuple[str, ...] = ("all",)
    ) -> None:
        self.settings = settings
        self.log_dir = log_dir
        self.roles = roles  # one worker per role (settings.worker_role), own web port each
        self.procs: dict[str, subprocess.Popen] = {}

    def _spawn(self, name: str, args: list[str], settings: Settings) -> None:
        self.procs[name] = spawn(args, settings, self.log_dir / f"{name}.log")

    def start(self, *, ingest: bool = True, worker: bool = True) -> Services:
        if ingest:
            self._spawn("ingest", ["ingest"], self.settings)
        if worker:
            for i, role in enumerate(self.roles):
                s = dataclasses.replace(
                    self.settings, worker_role=role, web_port=self.settings.web_port + i
                )
                self._spawn(f"worker{i}", ["worker"], s)
        if ingest:
            self.wait_ingest()
        return self

    def wait_ingest(self, timeout: float = 60.0) -> None:
        s = self.settings
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            with (
                contextlib.suppress(OSError),
                socket.create_connection((s.syslog_bind, s.syslog_tcp_port), timeout=1),
            ):
                return
            time.sleep(0.2)
        raise StackError(f"ingest did not listen on {s.syslog_tcp_port} within {timeout:.0f}s")

    def check_alive(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                log = self.log_dir / f"{name}.log"
                tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
                raise StackError(f"{name} exited with {proc.returncode}:\n{tail}")

    def pid(self, name: str) -> int:
        return self.procs[name].pid

    def stop(self, timeout: float = 60.0) -> dict[str, int | None]:
        """SIGTERM (graceful: ingest flushes, the worker commits), SIGKILL after ``timeout``."""
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        codes: dict[str, int | None] = {}
        for name, proc in self.procs.items():
            try:
                codes[name] = proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                codes[name] = proc.wait(10)
        return codes

    def __enter__(self) -> Services:
        return self

    def __exit__(self, *_exc: Any) -> None:
        self.stop()


def wait_for_count(
    client: Any, index: str, expected: int, timeout: float = 120.0, query: dict | None = None
) -> int:
    """Poll until ``index`` holds ``expected`` documents (or ``timeout``); returns the count."""
    deadline = time.monotonic() + timeout
    count = -1
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            client.indices.refresh(index=index)
            count = client.count(index=index, query=query or {"match_all": {}})["count"]
            if count >= expected:
                return count
        time.sleep(0.5)
    return count


def expected_ids(lines: Iterable[bytes]) -> set[str]:
    """The document ids the pipeline will write for these lines (what parses)."""
    from pipeline.ecs import document_id
    from pipeline.errors import DecryptscopeError
    from pipeline.panos import parse_line

    ids = set()
    for line in lines:
        with contextlib.suppress(DecryptscopeError):
            ids.add(document_id(parse_line(line)))
    return ids


SUMMARY_AGGS = {
    "causes": {
        "terms": {"field": "decryptscope.cause", "size": 100},
        "aggs": {
            "example": {
                "top_hits": {
                    "size": 1,
                    "_source": [
                        "decryptscope.category",
                        "decryptscope.mode",
                        "decryptscope.remediation",
                    ],
                }
            }
        },
    }
}


def summary(client: Any, index: str) -> list[dict[str, Any]]:
    """Causes with counts, category, mode and remediation, from one aggregation."""
    result = client.search(
        index=index, size=0, query={"term": {"decryptscope.failure": True}}, aggs=SUMMARY_AGGS
    )
    rows = []
    for bucket in result["aggregations"]["causes"]["buckets"]:
        hit = bucket["example"]["hits"]["hits"][0]["_source"]["decryptscope"]
        rows.append(
            {
                "cause": bucket["key"],
                "count": bucket["doc_count"],
                "category": hit.get("category", ""),
                "mode": hit.get("mode", ""),
                "remediation": hit.get("remediation", ""),
            }
        )
    return rows


def print_summary(rows: list[dict[str, Any]], total: int, settings: Settings) -> None:
    print(f"\n{total} events indexed in {settings.index_prefix}; decryption failures by cause:\n")
    for row in rows:
        print(f"  {row['count']:>4}  {row['cause']}  [{row['category']}, {row['mode']}]")
        remedy = " ".join(str(row["remediation"]).split())
        print(f"        fix: {remedy[:300]}{'...' if len(remedy) > 300 else ''}")
    print(
        "\nThe events in Elasticsearch:\n"
        f"  curl -s '{settings.es_url}/{settings.index_prefix}/_search?pretty' "
        "-H 'content-type: application/json' -d "
        '\'{"query": {"term": {"decryptscope.failure": true}}, '
        '"sort": [{"@timestamp": "desc"}]}\''
    )
    print(
        f"Metrics: worker http://{settings.web_bind}:{settings.web_port}/metrics, "
        f"ingest http://127.0.0.1:{settings.ingest_metrics_port}/metrics"
    )


def main(settings: Settings, *, keep: bool = False) -> int:
    from pipeline import replay, stack
    from pipeline.sinks.elasticsearch import make_client
    from pipeline.stack.layout import COMPONENTS
    from pipeline.stream import provision

    print("== the local stack", flush=True)
    stack.up(settings, list(COMPONENTS))
    print("== setup: topics and index templates", flush=True)
    provision.run(settings)
    log_dir = settings.cache_dir / "demo"
    services = Services(settings, log_dir)
    print(f"== ingest and worker (logs in {log_dir})", flush=True)
    services.start()
    client = make_client(settings, asynchronous=False)
    try:
        lines = replay.read_lines([SAMPLE])
        messages = replay.prepare(lines, now=True)
        print(f"== replaying {len(messages)} syslog messages over TCP", flush=True)
        target = replay.Target("tcp", settings.syslog_bind, settings.syslog_tcp_port)
        replay.replay(messages, target)
        wanted = len(expected_ids(messages))
        total = wait_for_count(client, settings.index_prefix, wanted, timeout=180)
        services.check_alive()
        if total < wanted:
            print(f"only {total} of {wanted} events indexed after 180 s", file=sys.stderr)
        print_summary(summary(client, settings.index_prefix), total, settings)
    finally:
        client.close()
        if keep:
            pids = ", ".join(f"{n} pid {p.pid}" for n, p in services.procs.items())
            print(f"\nStill running ({pids}); stop them with kill -TERM <pid>.")
        else:
            services.stop()
    return 0
