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

from pipeline.resources import ROOT
from pipeline.settings import Settings

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

SAMPLE = ROOT / "tests" / "golden" / "decryption-10.2-forward-unknown-ca.log"
CAUSE = "server-cert-untrusted-issuer"


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


def failure_lines(count: int, first: int) -> str:
    """``count`` copies of one failing DECRYPTION line, each its own session and sequence
    number (so each is its own event)."""
    line = next(
        text for text in SAMPLE.read_text().splitlines() if text and not text.startswith("#")
    )
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
