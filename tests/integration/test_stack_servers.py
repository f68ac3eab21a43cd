"""The local stack's servers are the real thing: data goes through Kafka, Elasticsearch indexes
and aggregates, Prometheus scrapes an exporter, Alertmanager takes alerts. Plus a second
stack on other ports, and what `stack up` does when a server dies while starting."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import random
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from collections import Counter
from pathlib import Path

import pytest
from stack_plugin import private_stack, private_stack_settings

from pipeline import resources
from pipeline import stack as stack_mod
from pipeline.errors import StackError
from pipeline.settings import Settings
from pipeline.stack import components, procs
from pipeline.stack.layout import COMPONENTS, Layout

pytestmark = pytest.mark.integration

N_MESSAGES = 10_000


def _get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


# --- Kafka ----------------------------------------------------------------------------------
def test_kafka_round_trips_every_message_through_three_partitions(kafka_bootstrap, run_prefix):
    from aiokafka import AIOKafkaConsumer
    from kafka import KafkaAdminClient, KafkaProducer
    from kafka.admin import NewTopic

    topic = f"{run_prefix}.stack.roundtrip"
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])
    admin.close()

    sent = {f"message-{i}" for i in range(N_MESSAGES)}
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all", linger_ms=5)
    for i, value in enumerate(sorted(sent)):
        producer.send(topic, key=str(i).encode(), value=value.encode())
    producer.flush()
    producer.close()

    async def consume() -> tuple[list[str], set[int]]:
        consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=kafka_bootstrap,
            group_id=f"{run_prefix}-roundtrip",
            auto_offset_reset="earliest",
            enable_auto_commit=False,
        )
        await consumer.start()
        received: list[str] = []
        partitions: set[int] = set()
        deadline = time.monotonic() + 120  # a safety net, not a speed check
        try:
            while len(received) < N_MESSAGES and time.monotonic() < deadline:
                batches = await consumer.getmany(timeout_ms=1000)
                for tp, records in batches.items():
                    partitions.add(tp.partition)
                    received.extend(r.value.decode() for r in records)
        finally:
            await consumer.stop()
        return received, partitions

    received, partitions = asyncio.run(consume())
    assert len(received) == N_MESSAGES  # nothing lost, nothing twice
    assert set(received) == sent
    assert partitions == {0, 1, 2}


# --- Elasticsearch --------------------------------------------------------------------------
def test_elasticsearch_bulk_indexes_through_a_template_and_aggregates(es_client, run_prefix):
    from elasticsearch import helpers

    causes = ["untrusted-issuer", "expired-cert", "pinned-cert", "unsupported-cipher", "ok"]
    template = f"{run_prefix}-stack-docs"
    es_client.indices.put_index_template(
        name=template,
        index_patterns=[f"{template}-*"],
        template={
            "settings": {"number_of_shards": 1, "number_of_replicas": 0},
            "mappings": {
                "dynamic": "strict",
                "properties": {"cause": {"type": "keyword"}, "n": {"type": "integer"}},
            },
        },
    )
    index = f"{template}-1"
    rng = random.Random(7)
    docs = [{"cause": rng.choice(causes), "n": i} for i in range(N_MESSAGES)]
    ok, errors = helpers.bulk(
        es_client,
        ({"_index": index, "_id": str(d["n"]), "_source": d} for d in docs),
        chunk_size=2000,
        raise_on_error=False,
    )
    assert (ok, errors) == (N_MESSAGES, [])
    es_client.indices.refresh(index=index)

    mapping = es_client.indices.get_mapping(index=index)[index]["mappings"]
    assert mapping["properties"]["cause"] == {"type": "keyword"}  # the template applied
    assert es_client.count(index=index)["count"] == N_MESSAGES
    result = es_client.search(
        index=index, size=0, aggs={"by_cause": {"terms": {"field": "cause", "size": 10}}}
    )
    buckets = {b["key"]: b["doc_count"] for b in result["aggregations"]["by_cause"]["buckets"]}
    assert buckets == dict(Counter(d["cause"] for d in docs))


# --- Prometheus and Alertmanager ------------------------------------------------------------
def _free_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def _scrape_and_query(prometheus_url: str, host: str, port: int, run: str) -> tuple[dict, int]:
    """Serve a gauge on host:port with prometheus_client; return what Prometheus stored."""
    from prometheus_client import CollectorRegistry, Gauge, start_http_server

    registry = CollectorRegistry()
    gauge = Gauge("stack_selftest_value", "Set by the stack self-test", ["run"], registry=registry)
    value = random.randint(1, 1_000_000)
    gauge.labels(run=run).set(value)
    server, thread = start_http_server(port, addr=host, registry=registry)
    try:
        query = urllib.parse.urlencode({"query": f'stack_selftest_value{{run="{run}"}}'})
        deadline = time.monotonic() + 90  # a safety net; scrape_interval is 5s
        while time.monotonic() < deadline:
            result = _get_json(f"{prometheus_url}/api/v1/query?{query}")["data"]["result"]
            if result:
                return result[0], value
            time.sleep(1)
    finally:
        server.shutdown()
        thread.join(timeout=10)
    pytest.fail(f"Prometheus at {prometheus_url} never scraped {host}:{port}", pytrace=False)


def test_prometheus_scrapes_an_exporter_on_a_scrape_target(
    settings, prometheus_url, run_prefix, tmp_path
):
    free = [
        (host, int(port))
        for host, _, port in (t.rpartition(":") for t in settings.scrape_targets)
        if procs.port_bindable(host, int(port))
    ]
    if free:
        host, port = free[0]
        seen, value = _scrape_and_query(prometheus_url, host, port, run_prefix)
    else:
        # The pipeline itself holds the scrape targets' ports: check the same configuration
        # on a Prometheus of its own whose scrape target is a free port.
        host = settings.stack_host
        port = _free_port(host)
        own = dataclasses.replace(
            private_stack_settings(settings, tmp_path, _free_offset(settings)),
            scrape_targets=(f"{host}:{port}",),
        )
        with private_stack(own, ("prometheus",)):
            url = components.address("prometheus", own)
            seen, value = _scrape_and_query(url, host, port, run_prefix)
    assert float(seen["value"][1]) == value
    assert seen["metric"]["instance"] == f"{host}:{port}"
    assert seen["metric"]["job"] == "decryptscope"


def test_alertmanager_accepts_and_lists_an_alert(alertmanager_url, run_prefix):
    name = f"StackSelfTest{run_prefix}"
    alert = [{"labels": {"alertname": name, "severity": "info"}, "annotations": {"summary": "x"}}]
    request = urllib.request.Request(
        f"{alertmanager_url}/api/v2/alerts",
        data=json.dumps(alert).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200
    query = urllib.parse.urlencode({"filter": f'alertname="{name}"'})
    with urllib.request.urlopen(f"{alertmanager_url}/api/v2/alerts?{query}", timeout=10) as r:
        listed = json.loads(r.read())
    assert [a["labels"]["alertname"] for a in listed] == [name]


def test_promtool_accepts_the_config_and_its_runtime_copy(settings, tmp_path):
    promtool = shutil.which("promtool")
    assert promtool, "promtool comes with Debian's prometheus package"
    source = resources.DEPLOY / "prometheus" / "prometheus.yml"
    done = subprocess.run(
        [promtool, "check", "config", str(source)], capture_output=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr

    other = private_stack_settings(settings, tmp_path, 20_000)
    runtime = components.write_prometheus_config(other, tmp_path / "prometheus")
    done = subprocess.run(
        [promtool, "check", "config", str(runtime)], capture_output=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"127.0.0.1:{settings.prometheus_port + 20_000}" in runtime.read_text()


# --- a second stack, and failures -----------------------------------------------------------
def _free_offset(settings: Settings) -> int:
    ports = [getattr(settings, p) for names in components.PORTS.values() for p in names]
    for offset in range(20_000, 40_000, 1_000):
        if all(procs.port_bindable(settings.stack_host, p + offset) for p in ports):
            return offset
    pytest.fail("no free block of ports for a second stack", pytrace=False)


@pytest.mark.slow
def test_a_second_stack_runs_beside_the_first_on_other_ports(settings, stack, tmp_path_factory):
    from elasticsearch import Elasticsearch
    from kafka import KafkaAdminClient

    second = private_stack_settings(
        settings, tmp_path_factory.mktemp("stack2"), _free_offset(settings)
    )
    layout = Layout(second.cache_dir, second.es_user)
    with private_stack(second):
        rows = {r["component"]: r for r in stack_mod.status_rows(second, COMPONENTS)}
        assert all(r["healthy"] and r["pid"] for r in rows.values()), rows
        pids = [r["pid"] for r in rows.values()]
        admin = KafkaAdminClient(bootstrap_servers=second.kafka_bootstrap)
        admin.close()
        es = Elasticsearch(second.es_url)
        assert es.cluster.health()["cluster_name"] == "decryptscope-local"
        es.close()
        # the first stack is untouched
        assert all(components.PROBES[n](settings).ok for n in COMPONENTS)
    assert not any(procs.is_running(pid) for pid in pids)
    assert not any(layout.state(n).exists() for n in COMPONENTS)
    assert not layout.data("kafka").exists()  # purged
    ports = [getattr(second, p) for names in components.PORTS.values() for p in names]
    assert all(procs.port_bindable(second.stack_host, p) for p in ports)


def test_a_server_dying_while_starting_is_reported_and_leaves_nothing(settings, tmp_path):
    second = private_stack_settings(settings, tmp_path, _free_offset(settings))
    broken = dataclasses.replace(second, kafka_heap="1k")  # the JVM refuses this heap
    with pytest.raises(StackError) as caught:
        stack_mod.up(broken, ["kafka"], say=lambda _m: None)
    message = str(caught.value)
    assert "kafka stopped while starting" in message
    assert "Too small" in message  # the tail of the server's own log
    layout = Layout(Path(tmp_path), second.es_user)
    assert not layout.state("kafka").exists()
    assert procs.port_bindable(second.stack_host, second.kafka_port)
    pids = [int(entry) for entry in os.listdir("/proc") if entry.isdigit()]
    assert not [pid for pid in pids if str(tmp_path) in procs.cmdline(pid)]


def test_up_again_reloads_prometheus_and_alertmanager(settings, tmp_path):
    own = private_stack_settings(settings, tmp_path, _free_offset(settings))
    names = ("prometheus", "alertmanager")
    with private_stack(own, names):
        said: list[str] = []
        rows = stack_mod.up(own, list(names), say=said.append)
        assert all(row["healthy"] for row in rows)
        assert "prometheus reloaded its configuration from deploy/" in said
        assert "alertmanager reloaded its configuration from deploy/" in said
        config_url = f"{components.address('prometheus', own)}/api/v1/status/config"
        loaded = _get_json(config_url)["data"]["yaml"]
        assert f"127.0.0.1:{own.alertmanager_port}" in loaded
        rules = _get_json(f"{components.address('prometheus', own)}/api/v1/rules")
        files = {group["file"] for group in rules["data"]["groups"]}
        expected = {p.name for p in (resources.DEPLOY / "prometheus" / "rules").glob("*.yml")}
        assert {Path(f).name for f in files} == expected
