"""``decryptscope setup`` on the real Kafka and Elasticsearch: idempotent, ``--check`` finds
drift, retention deletes only old daily indices."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest
from kafka.admin import KafkaAdminClient

from pipeline.commands.setup import setup
from pipeline.sinks import es_templates

pytestmark = pytest.mark.integration


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
        worker_id=tag,
        topic_partitions=3,
    )


def env_of(s) -> dict[str, str]:
    import os

    env = dict(os.environ)
    names = (
        "index_prefix",
        "alerts_index",
        "topic_raw",
        "topic_events",
        "topic_alerts",
        "worker_id",
    )
    for name in (*names, "topic_dlq"):
        env[f"DECRYPTSCOPE_{name.upper()}"] = getattr(s, name)
    env["DECRYPTSCOPE_TOPIC_PARTITIONS"] = str(s.topic_partitions)
    env["DECRYPTSCOPE_KAFKA_BOOTSTRAP"] = s.kafka_bootstrap
    env["DECRYPTSCOPE_ES_URL"] = s.es_url
    return env


def cli(s, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pipeline", *args],
        check=False,
        env=env_of(s),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_setup_twice_then_check_reports_no_drift(run_settings, es_client) -> None:
    first = cli(run_settings, "setup")
    assert first.returncode == 0, first.stderr
    assert f"topic {run_settings.topic_raw}" in first.stdout
    second = cli(run_settings, "setup")
    assert second.returncode == 0, second.stderr
    assert "topic " not in second.stdout  # nothing left to create
    check = cli(run_settings, "setup", "--check")
    assert check.returncode == 0, check.stdout + check.stderr
    assert "no drift" in check.stdout
    admin = KafkaAdminClient(bootstrap_servers=run_settings.kafka_bootstrap)
    described = admin.describe_topics([run_settings.topic_events])
    admin.close()
    assert len(described[0]["partitions"]) == 3
    template = es_client.indices.get_index_template(name=run_settings.index_prefix)
    body = template["index_templates"][0]["index_template"]
    assert body["index_patterns"] == [f"{run_settings.index_prefix}-*"]
    alerts = es_client.indices.get_index_template(name=run_settings.alerts_index)
    body = alerts["index_templates"][0]["index_template"]
    assert body["index_patterns"] == [f"{run_settings.alerts_index}-*"]


def test_check_finds_changed_template_and_missing_topic(run_settings, es_client) -> None:
    assert setup(run_settings) == 0
    name = f"{run_settings.index_prefix}-decryptscope"
    es_client.cluster.put_component_template(
        name=name,
        template={"mappings": {"properties": {"decryptscope": {"type": "keyword"}}}},
    )
    admin = KafkaAdminClient(bootstrap_servers=run_settings.kafka_bootstrap)
    admin.delete_topics([run_settings.topic_dlq])
    admin.close()
    check = cli(run_settings, "setup", "--check")
    assert check.returncode == 1
    assert f"component template {name}: differs" in check.stdout
    assert f"topic {run_settings.topic_dlq}: missing" in check.stdout


def test_retention_deletes_only_older_daily_indices(run_settings, es_client) -> None:
    prefix = run_settings.index_prefix
    es_templates.setup_elasticsearch(es_client, prefix)
    today = datetime.now(UTC)
    names = [f"{prefix}-{(today - timedelta(days=d)):%Y.%m.%d}" for d in (0, 1, 5, 40)]
    for name in names:
        es_client.indices.create(index=name)
    unrelated = f"{prefix}-keep"
    es_client.indices.create(index=unrelated)
    deleted = es_templates.apply_retention(es_client, prefix, 3)
    assert deleted == sorted(names[2:])
    left = set(es_client.indices.get(index=f"{prefix}-*"))
    assert left == {names[0], names[1], unrelated}
    assert es_client.indices.get_alias(index=names[0])[names[0]]["aliases"] == {prefix: {}}
