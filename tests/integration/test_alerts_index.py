"""The alerts index on the real Elasticsearch: ``decryptscope setup`` gives it a template of its
own, so that an alert the pipeline writes is found by exact value and the index is green on a
single node; ``setup --check`` notices when that template is changed or missing."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline.alerting import AlertConfig, SpikeDetector
from pipeline.chain import Chain, ChainConfig, Message
from pipeline.sinks.elasticsearch import BulkWriter, make_client
from tests.harness import settings_env

pytestmark = pytest.mark.integration

# A failing DECRYPTION line whose cause (from the golden case beside it) has a dash in its id:
# a text mapping would split it into words and a `term` query on the whole id would miss it.
SAMPLE = (
    Path(__file__).resolve().parents[1] / "golden" / "diagnosis" / "unsupported-tls-version.log"
)
CAUSE = "unsupported-tls-version"
SERVER = "www.example.com"


@pytest.fixture
def run_settings(settings, run_prefix, request):
    tag = f"{run_prefix}{request.node.name[5:20]}".lower().replace("_", "")
    return dataclasses.replace(
        settings,
        index_prefix=f"{tag}-events",
        alerts_index=f"{tag}-alerts",
        topic_raw=f"{tag}.raw",
        topic_events=f"{tag}.events",
        topic_alerts=f"{tag}.alerts",
        topic_dlq=f"{tag}.dlq",
    )


def cli(s, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pipeline", *args],
        check=False,
        env=settings_env(s),
        capture_output=True,
        text=True,
        timeout=120,
    )


def pipeline_alerts() -> list[dict]:
    """Alerts as the worker makes them: the sample line parsed, diagnosed and converted to
    ECS, its failure fed to the spike detector until a window closes with a new cause."""
    line = next(t for t in SAMPLE.read_text().splitlines() if t and not t.startswith("#"))
    [failure] = Chain(ChainConfig()).run([Message(line)], {}, 0.0).failures
    assert failure.cause == CAUSE
    detector = SpikeDetector(AlertConfig(window_s=60, baseline_windows=1, new_min_count=5))
    start = (int(time.time()) // 60 - 1) * 60
    detector.tick(start - 60)  # running for one window before: warm enough to call a cause new
    for n in range(10):
        detector.observe(failure, start + 1 + n)
    alerts = detector.tick(start + 60)
    assert alerts, "the detector made no alert"
    return alerts


async def test_an_alert_the_pipeline_writes_is_found_by_term_and_its_index_is_green(
    run_settings, es_client
) -> None:
    done = cli(run_settings, "setup")
    assert done.returncode == 0, done.stderr
    check = cli(run_settings, "setup", "--check")
    assert check.returncode == 0, check.stdout + check.stderr

    alerts = pipeline_alerts()
    # The alert path of the worker: one BulkWriter on the alerts index, documents by their id.
    writer = BulkWriter(
        make_client(run_settings), run_settings, index_prefix=run_settings.alerts_index
    )
    try:
        rejected = await writer.write([(alert["id"], alert) for alert in alerts])
    finally:
        await writer.client.close()
    assert rejected == []

    pattern = f"{run_settings.alerts_index}-*"
    es_client.indices.refresh(index=pattern)
    exact = (
        ("cause", CAUSE),
        ("kind", "new_cause"),
        ("mode", "forward-proxy"),
        ("top_servers.value", SERVER),
    )
    for field, value in exact:
        hits = es_client.search(index=pattern, query={"term": {field: value}})["hits"]["hits"]
        assert {h["_id"] for h in hits} >= {alerts[0]["id"]}, (field, value)
    by_alias = es_client.search(index=run_settings.alerts_index, query={"term": {"cause": CAUSE}})
    assert by_alias["hits"]["total"]["value"] >= 1

    health = es_client.cluster.health(index=pattern, wait_for_status="green", timeout="30s")
    assert health["status"] == "green"
    assert not health["timed_out"]
    for name, body in es_client.indices.get_settings(index=pattern).items():
        assert body["settings"]["index"]["number_of_replicas"] == "0", name


def test_check_finds_a_changed_or_missing_alerts_template(run_settings, es_client) -> None:
    assert cli(run_settings, "setup").returncode == 0
    name = run_settings.alerts_index
    es_client.indices.put_index_template(
        name=name, index_patterns=[f"{name}-*"], priority=210, template={}
    )
    check = cli(run_settings, "setup", "--check")
    assert check.returncode == 1
    assert f"index template {name}: template differs" in check.stdout
    es_client.indices.delete_index_template(name=name)
    check = cli(run_settings, "setup", "--check")
    assert check.returncode == 1
    assert f"index template {name}: missing" in check.stdout
