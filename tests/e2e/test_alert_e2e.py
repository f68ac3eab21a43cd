"""A real alert end to end: replayed syslog -> ingest -> Kafka -> worker -> /metrics ->
the stack's Prometheus (shipped rules) -> Alertmanager, and the in-stream alert on the alerts
topic. Needs `decryptscope stack up`; the stack's Prometheus scrapes the worker on 6066 and the
ingest on 9466, so those ports must be free for the processes this test starts."""

from __future__ import annotations

import json
import math
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from elasticsearch import Elasticsearch
from kafka import KafkaConsumer
from prometheus_client.parser import text_string_to_metric_families

from pipeline.resources import ROOT
from pipeline.settings import Settings

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

SAMPLE = ROOT / "tests" / "golden" / "decryption-10.2-forward-unknown-ca.log"
CAUSE = "server-cert-untrusted-issuer"
DIAGNOSIS = ROOT / "tests" / "golden" / "diagnosis"
# The first-burst case: one cause in one mode that no other test here sends (Error Index
# Version on a Forward proxy line; the expected cause and category are the golden case's and
# the catalogue's).
BURST_SAMPLE = DIAGNOSIS / "unsupported-tls-version.log"
BURST_CAUSE = "unsupported-tls-version"
BURST_LABELS = {"cause": BURST_CAUSE, "category": "unsupported-parameter", "mode": "forward-proxy"}
WARM_UP = DIAGNOSIS / "none-successful-handshake.log"


def http_json(url: str) -> object:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return json.loads(resp.read())


def port_free(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(what: str, check, timeout: float, every: float = 2.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def log_line(path: Path) -> str:
    return next(text for text in path.read_text().splitlines() if text and not text.startswith("#"))


def failure_lines(count: int, first: int) -> str:
    """``count`` copies of one failing DECRYPTION line, each its own session and sequence
    number (so each is its own event)."""
    line = log_line(SAMPLE)
    assert line.count(",123456,") == 1 and line.count("7300000000000000001") == 1
    out = []
    for n in range(first, first + count):
        out.append(
            line.replace(",123456,", f",{200000 + n},").replace(
                "7300000000000000001", f"74{n:017d}"
            )
        )
    return "\n".join(out) + "\n"


@pytest.fixture
def pipeline_env(
    tmp_path: Path, run_prefix: str, settings: Settings, prometheus_url: str, alertmanager_url: str
) -> dict[str, str]:
    # Everything this test creates starts with run_prefix: the session cleans it up.
    prefix = f"{run_prefix}-{uuid.uuid4().hex[:4]}"
    syslog_port = free_port()
    env = dict(os.environ)
    env.update(
        {
            "DECRYPTSCOPE_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
            "DECRYPTSCOPE_ES_URL": settings.es_url,
            "DECRYPTSCOPE_TOPIC_RAW": f"{prefix}.raw",
            "DECRYPTSCOPE_TOPIC_EVENTS": f"{prefix}.events",
            "DECRYPTSCOPE_TOPIC_ALERTS": f"{prefix}.alerts",
            "DECRYPTSCOPE_TOPIC_DLQ": f"{prefix}.dlq",
            "DECRYPTSCOPE_TOPIC_PARTITIONS": "2",
            "DECRYPTSCOPE_INDEX_PREFIX": f"{prefix}-events",
            "DECRYPTSCOPE_ALERTS_INDEX": f"{prefix}-alerts",
            "DECRYPTSCOPE_WORKER_ID": prefix,
            "DECRYPTSCOPE_WORKER_DATA_DIR": str(tmp_path / "worker"),
            "DECRYPTSCOPE_SYSLOG_UDP_PORT": str(syslog_port),
            "DECRYPTSCOPE_SYSLOG_TCP_PORT": str(syslog_port),
            "DECRYPTSCOPE_SYSLOG_TLS_PORT": str(free_port()),
            # In-stream detector: 10s windows so that baseline and spike fit in a minute.
            "DECRYPTSCOPE_ALERT_WINDOW_S": "10",
            "DECRYPTSCOPE_ALERT_BASELINE_WINDOWS": "3",
        }
    )
    env["E2E_PREFIX"] = prefix
    env["E2E_SYSLOG"] = f"tcp://127.0.0.1:{syslog_port}"
    env["E2E_PROMETHEUS"] = prometheus_url.rstrip("/")
    env["E2E_ALERTMANAGER"] = alertmanager_url.rstrip("/")
    return env


@pytest.fixture
def running_pipeline(
    pipeline_env: dict[str, str], tmp_path: Path, settings: Settings
) -> Iterator[dict[str, str]]:
    for port in (settings.web_port, settings.ingest_metrics_port):
        assert port_free(port), f"port {port} is taken: stop the running worker/ingest first"
    decryptscope = [sys.executable, "-m", "pipeline"]
    setup = subprocess.run(
        [*decryptscope, "setup"],
        env=pipeline_env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert setup.returncode == 0, setup.stderr
    procs = []
    try:
        for name in ("ingest", "worker"):
            log = (tmp_path / f"{name}.log").open("w")
            procs.append(
                subprocess.Popen(
                    [*decryptscope, name],
                    env=pipeline_env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
        wait_for(
            "the worker and ingest /metrics",
            lambda: (
                not port_free(settings.web_port) and not port_free(settings.ingest_metrics_port)
            ),
            90,
        )
        yield pipeline_env
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()


def replay(env: dict[str, str], text: str, rate: int, path: Path) -> None:
    path.write_text(text)
    result = subprocess.run(
        [sys.executable, "-m", "pipeline", "replay", "--to", env["E2E_SYSLOG"], "--rate",
         str(rate), "--now", str(path)],
        env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr


def spike_rate(prometheus: str) -> int:
    """Failures per second for one minute that make a spike by the shipped rule (more than 3x
    the cause's baseline), however much of the cause earlier runs left in the stack's
    Prometheus."""
    expr = f'cause:decryptscope_decryption_failures:rate1m_avg30m_offset5m{{cause="{CAUSE}"}}'
    query = urllib.parse.urlencode({"query": expr})
    result = http_json(f"{prometheus}/api/v1/query?{query}")["data"]["result"]
    baseline_per_s = max((float(r["value"][1]) for r in result), default=0.0)
    return max(50, math.ceil(baseline_per_s * 5))


def prometheus_alerts(prometheus: str, name: str) -> list[dict]:
    body = http_json(f"{prometheus}/api/v1/alerts")
    return [a for a in body["data"]["alerts"] if a["labels"].get("alertname") == name]


def alertmanager_alerts(alertmanager: str, name: str) -> list[dict]:
    query = urllib.parse.urlencode({"filter": f'alertname="{name}"', "active": "true"})
    return http_json(f"{alertmanager}/api/v2/alerts?{query}")


def test_a_replayed_spike_alerts_in_prometheus_alertmanager_and_the_stream(
    running_pipeline: dict[str, str], tmp_path: Path, settings: Settings
):
    env = running_pipeline
    # Baseline: a trickle of the cause for 40s (4 in-stream windows), then a spike.
    replay(env, failure_lines(40, 0), 1, tmp_path / "baseline.log")
    rate = spike_rate(env["E2E_PROMETHEUS"])
    replay(env, failure_lines(rate * 60, 1000), rate, tmp_path / "spike.log")

    firing = wait_for(
        "DecryptionFailureSpike to fire in Prometheus",
        lambda: [
            a
            for a in prometheus_alerts(env["E2E_PROMETHEUS"], "DecryptionFailureSpike")
            if a["state"] == "firing" and a["labels"].get("cause") == CAUSE
        ],
        180,
        5,
    )
    assert firing[0]["labels"]["severity"] == "critical"

    received = wait_for(
        "the alert in Alertmanager",
        lambda: [
            a
            for a in alertmanager_alerts(env["E2E_ALERTMANAGER"], "DecryptionFailureSpike")
            if a["labels"].get("cause") == CAUSE
        ],
        90,
        3,
    )  # fmt: skip
    assert received[0]["annotations"]["runbook_url"].endswith("#decryptionfailurespike")

    consumer = KafkaConsumer(
        env["DECRYPTSCOPE_TOPIC_ALERTS"],
        bootstrap_servers=settings.kafka_bootstrap,
        auto_offset_reset="earliest",
        consumer_timeout_ms=5000,
        value_deserializer=orjson.loads,
    )
    try:
        alerts = wait_for(
            "the in-stream alert on the alerts topic",
            lambda: [m.value for m in consumer if m.value.get("cause") == CAUSE],
            120,
            1,
        )
    finally:
        consumer.close()
    kinds = {a["kind"] for a in alerts}
    assert kinds & {"spike", "new_cause"}
    spike = next(a for a in alerts if a["kind"] in {"spike", "new_cause"})
    assert spike["observed"] >= 20
    assert spike["top_servers"][0]["value"] == "app.example.test"
    assert spike["remediation"]
    assert spike["sample_event_ids"][0].startswith("013201000001:DECRYPTION:")

    es = Elasticsearch(settings.es_url)
    try:
        indexed = wait_for(
            "the in-stream alert in the alerts index",
            lambda: es.search(
                index=f"{env['DECRYPTSCOPE_ALERTS_INDEX']}-*",
                q=f'cause:"{CAUSE}"',
                allow_no_indices=True,
            )["hits"]["hits"],
            60,
        )
    finally:
        es.close()
    assert indexed[0]["_id"] == indexed[0]["_source"]["id"]


def sessions_of(path: Path, count: int, first: int) -> bytes:
    """``count`` copies of the sample's line, each its own session and sequence number."""
    line = log_line(path)
    assert line.count(",1017,") == 1 and line.count("7451000000000001017") == 1
    return b"".join(
        line.replace(",1017,", f",{300000 + n},")
        .replace("7451000000000001017", f"75{n:017d}")
        .encode()
        + b"\n"
        for n in range(first, first + count)
    )


def send_tcp(syslog: str, payload: bytes) -> None:
    host, port = urllib.parse.urlsplit(syslog).netloc.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(payload)


def last_scrape(prometheus: str, instance: str) -> str | None:
    targets = http_json(f"{prometheus}/api/v1/targets")["data"]["activeTargets"]
    for target in targets:
        if target["labels"].get("instance") == instance and target["health"] == "up":
            return target["lastScrape"]
    return None


def worker_failures(port: int) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "decryptscope_decryption_failures_total" and all(
                sample.labels.get(k) == v for k, v in BURST_LABELS.items()
            ):
                return sample.value
    return 0.0


def test_the_first_ever_burst_of_a_cause_in_a_mode_reaches_alertmanager(
    running_pipeline: dict[str, str], settings: Settings
):
    """A fresh worker, then one burst of a (cause, mode) pair it has never counted, delivered
    between two scrapes: Prometheus must see it as an increase and DecryptionFailureSpike must
    reach Alertmanager."""
    env = running_pipeline
    prometheus = env["E2E_PROMETHEUS"]
    instance = f"127.0.0.1:{settings.web_port}"
    # The worker consumes (one successful handshake is indexed) and Prometheus scrapes it.
    send_tcp(env["E2E_SYSLOG"], log_line(WARM_UP).encode() + b"\n")
    es = Elasticsearch(settings.es_url)
    try:
        wait_for(
            "the warm-up event in Elasticsearch",
            lambda: (
                es.options(ignore_status=404)
                .count(index=env["DECRYPTSCOPE_INDEX_PREFIX"])
                .get("count")
            ),
            120,
            1,
        )
    finally:
        es.close()
    seen = wait_for("Prometheus scraping the worker", lambda: last_scrape(prometheus, instance), 60)

    # Enough to be a spike over whatever earlier runs left as this cause's baseline.
    expr = f'cause:decryptscope_decryption_failures:rate1m_avg30m_offset5m{{cause="{BURST_CAUSE}"}}'
    query = urllib.parse.urlencode({"query": expr})
    result = http_json(f"{prometheus}/api/v1/query?{query}")["data"]["result"]
    baseline_per_s = max((float(r["value"][1]) for r in result), default=0.0)
    count = max(400, math.ceil(baseline_per_s * 60 * 5))
    burst = sessions_of(BURST_SAMPLE, count, 0)

    # Right after a scrape, so that the whole burst lands before the next one.
    wait_for(
        "the next scrape of the worker",
        lambda: (last_scrape(prometheus, instance) or seen) != seen,
        30,
        0.1,
    )
    send_tcp(env["E2E_SYSLOG"], burst)
    wait_for(
        f"the worker to count the {count} failures",
        lambda: worker_failures(settings.web_port) == count,
        120,
        0.5,
    )

    firing = wait_for(
        "DecryptionFailureSpike to fire in Prometheus",
        lambda: [
            a
            for a in prometheus_alerts(prometheus, "DecryptionFailureSpike")
            if a["state"] == "firing" and a["labels"].get("cause") == BURST_CAUSE
        ],
        150,
        3,
    )
    assert firing[0]["labels"]["severity"] == "critical"
    received = wait_for(
        "the alert in Alertmanager",
        lambda: [
            a
            for a in alertmanager_alerts(env["E2E_ALERTMANAGER"], "DecryptionFailureSpike")
            if a["labels"].get("cause") == BURST_CAUSE
        ],
        90,
        3,
    )
    assert received[0]["annotations"]["runbook_url"].endswith("#decryptionfailurespike")
