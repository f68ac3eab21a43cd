"""The test harness of the end-to-end, fault and security tests and of the benchmarks: a
pipeline of its own on the shared stack (``isolated_settings``), waiting for documents, and the
document ids a set of log lines must produce, read from the lines themselves.

``expected_ids`` does not parse with the code under test: it reads serial, log type and
sequence number from the CSV columns where the vendor's syslog field descriptions put them, so
a line the parser wrongly rejects is still expected (and missing), not silently left out."""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import socket
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pipeline.commands.demo import SAMPLE
from pipeline.commands.processes import Services, settings_env, spawn
from pipeline.settings import Settings

__all__ = [
    "LOG_DOCUMENTS",
    "SAMPLE",
    "Services",
    "expected_ids",
    "free_port",
    "group_members",
    "isolated_settings",
    "sample_lines",
    "settings_env",
    "spawn",
    "wait_for_count",
    "wait_group",
]

# Column (0-based) of the Sequence Number in each CSV log type, from the PAN-OS syslog field
# descriptions (10.x-11.x): TRAFFIC, THREAT, SYSTEM and DECRYPTION log fields.
SEQNO_COLUMN = {"TRAFFIC": 39, "THREAT": 36, "SYSTEM": 15, "DECRYPTION": 89}
# The demo sample's comment above the lines it says are not PAN-OS logs.
NOT_PANOS = "# not PAN-OS"


def sample_lines(path: Path = SAMPLE) -> tuple[list[bytes], list[bytes]]:
    """(the log lines, the lines the file's comments say are not PAN-OS logs) of a labelled
    sample such as ``deploy/demo/sample-traffic.log``."""
    good: list[bytes] = []
    bad: list[bytes] = []
    into = good
    for line in path.read_bytes().splitlines():
        if line.startswith(b"#"):
            into = bad if line.decode().startswith(NOT_PANOS) else good
        elif line.strip():
            into.append(line)
    return good, bad


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


# The documents of log lines: every document but the change points' own (event.dataset
# decryptscope.change), which the chain adds beside the lines that show a change.
LOG_DOCUMENTS: dict = {"bool": {"must_not": [{"term": {"event.dataset": "decryptscope.change"}}]}}


def wait_for_count(
    client: Any, index: str, expected: int, timeout: float = 120.0, query: dict | None = None
) -> int:
    """Poll until ``index`` holds ``expected`` documents matching ``query`` (by default the
    documents of log lines, ``LOG_DOCUMENTS``), or ``timeout``; returns the count."""
    deadline = time.monotonic() + timeout
    count = -1
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            client.indices.refresh(index=index)
            count = client.count(index=index, query=query or LOG_DOCUMENTS)["count"]
            if count >= expected:
                return count
        time.sleep(0.5)
    return count


def expected_ids(lines: Iterable[bytes]) -> set[str]:
    """``serial:TYPE:seqno`` of each PAN-OS CSV line, read from its columns (syslog header
    skipped at the record start). Raises ValueError for a line it cannot read an id from: a
    test must know what it expects."""
    ids = set()
    for line in lines:
        text = line.decode("utf-8", "replace").strip()
        start = text.find(",")
        # the record starts at FUTURE_USE, the digits before the first comma
        while start > 0 and text[start - 1].isdigit():
            start -= 1
        row = next(csv.reader([text[start:]]))
        log_type = row[3] if len(row) > 3 else ""
        column = SEQNO_COLUMN.get(log_type)
        if column is None or len(row) <= column or not row[column].isdigit():
            raise ValueError(f"no document id in {text[:80]!r}")
        ids.add(f"{row[2]}:{log_type}:{row[column]}")
    return ids


def group_members(settings: Settings) -> tuple[str, int]:
    """The worker group's state and member count, as its coordinator in Kafka sees them."""
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError

    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    try:
        group = admin.describe_groups([settings.worker_id])[settings.worker_id]
        return group["group_state"], len(group["members"])
    except KafkaError as exc:
        if exc.retriable:  # e.g. no coordinator yet while __consumer_offsets is created
            return "unknown", 0
        raise
    finally:
        admin.close()


def wait_group(settings: Settings, members: int, timeout_s: float) -> float:
    """Seconds until the worker group is Stable with ``members`` members (its partitions all
    assigned to them), or ``inf`` if it is not within ``timeout_s``."""
    start = time.monotonic()
    while time.monotonic() - start < timeout_s:
        if group_members(settings) == ("Stable", members):
            return time.monotonic() - start
        time.sleep(0.5)
    return float("inf")
