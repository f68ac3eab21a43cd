"""The whole pipeline with every security option on: syslog over mutual TLS (server key under a
password) -> ingest -> Kafka over SASL_SSL (SCRAM-SHA-512) -> worker (aiokafka over SASL_SSL)
-> Elasticsearch over TLS with a real API key minted on the node (basic auth is set as well;
the key wins). Then: the secrets, that key included, appear nowhere (logs, /metrics, dead
letters, ``stack status``, ``setup --check``), the worker's web server listens on loopback only,
and the strict mapping turns a crafted top-level field into a dead letter instead of a new
mapping."""

from __future__ import annotations

import base64
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import orjson
import pytest
from conftest import (
    ES_PASSWORD,
    ES_USER,
    KAFKA_PASSWORD,
    KAFKA_USER,
    TLS_KEY_PASSWORD,
    mint_api_key,
)
from elasticsearch import Elasticsearch
from kafka import KafkaConsumer

from pipeline import kafka_config
from pipeline.commands import replay
from pipeline.stack import procs
from tests.harness import (
    LOG_DOCUMENTS,
    SAMPLE,
    Services,
    expected_ids,
    isolated_settings,
    sample_lines,
    settings_env,
    wait_for_count,
)

pytestmark = [pytest.mark.integration, pytest.mark.e2e, pytest.mark.slow]

BAD_LINE = b"<14>Nov 20 10:15:09 fw-edge-01 this is not a PAN-OS log line"


@pytest.fixture(scope="module")
def secure_run(settings, run_prefix, secure_kafka, secure_es, *, pki, tmp_path_factory):
    tag = f"{run_prefix}-secure"
    folder = tmp_path_factory.mktemp("secure-run")
    _key_id, api_key = mint_api_key(
        secure_es, f"{tag}-pipeline", f"{tag}-events-*", f"{tag}-alerts*"
    )
    s = isolated_settings(
        settings,
        tag,
        folder / "worker",
        kafka_bootstrap=secure_kafka.sasl_ssl,
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_username=KAFKA_USER,
        kafka_sasl_password=KAFKA_PASSWORD,
        kafka_ssl_cafile=str(pki.ca.cert_path),
        es_url=secure_es.url,
        es_ca_certs=str(secure_es.ca),
        es_username=ES_USER,
        es_password=ES_PASSWORD,
        es_api_key=api_key,
        syslog_tls_cert=str(pki.server_locked.cert),
        syslog_tls_key=str(pki.server_locked.key),
        syslog_tls_key_password=TLS_KEY_PASSWORD,
        syslog_tls_client_ca=str(pki.ca.cert_path),
        batch_max_wait_s=0.3,
    )
    setup = subprocess.run(
        [sys.executable, "-m", "pipeline", "setup"],
        env=settings_env(s), capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip
    (folder / "setup.log").write_text(setup.stdout + setup.stderr)
    assert setup.returncode == 0, setup.stderr
    services = Services(s, folder / "logs").start()
    try:
        yield s, services, folder
    finally:
        codes = services.stop()
        assert codes["ingest"] == 0, (folder / "logs" / "ingest.log").read_text()[-2000:]


def es_admin(s) -> Elasticsearch:
    return Elasticsearch(s.es_url, ca_certs=s.es_ca_certs, basic_auth=(ES_USER, ES_PASSWORD))


def send_mtls(s, pki, lines: list[bytes]) -> None:
    target = replay.Target("tls", "127.0.0.1", s.syslog_tls_port)
    sent = replay.replay(
        replay.prepare(lines, now=False),
        target,
        cafile=str(pki.ca.cert_path),
        certfile=str(pki.client.cert),
        keyfile=str(pki.client.key),
    )
    assert sent == len(lines)


def dead_letters(s, count: int, idle_ms: int = 60000) -> list[dict]:
    """Up to ``count`` dead letters; stops after ``idle_ms`` without a new one."""
    consumer = KafkaConsumer(
        s.topic_dlq,
        **kafka_config.consumer_kwargs(
            s, auto_offset_reset="earliest", consumer_timeout_ms=idle_ms
        ),
    )
    letters = []
    for message in consumer:
        letters.append(orjson.loads(message.value))
        if len(letters) >= count:
            break
    consumer.close()
    return letters


def test_mtls_sasl_ssl_and_es_auth_end_to_end(secure_run, pki) -> None:
    s, _services, _folder = secure_run
    lines = replay.read_lines([SAMPLE])
    wanted = expected_ids(sample_lines()[0])
    send_mtls(s, pki, lines)
    client = es_admin(s)
    assert wait_for_count(client, s.index_prefix, len(wanted)) == len(wanted)
    client.indices.refresh(index=s.index_prefix)
    hits = client.search(index=s.index_prefix, size=1000, query=LOG_DOCUMENTS)["hits"]
    assert {h["_id"] for h in hits["hits"]} == wanted
    client.close()


def test_a_crafted_field_in_a_log_cannot_add_a_mapping(secure_run, pki) -> None:
    # A sender controls the text of its logs, not the documents: a JSON log (the rendering of
    # PAN-OS HTTPS forwarding) with keys of its own, one of them trying to set event.kind,
    # is indexed with the fields the layouts map, and the strict template gains nothing.
    s, _services, _folder = secure_run
    sample = Path(__file__).resolve().parents[1] / "golden" / "sample-sekoia-decryption-json.log"
    line = next(x for x in sample.read_text().splitlines() if x.startswith("{"))
    crafted = orjson.loads(line)
    crafted["crafted_field_7c1e"] = {"nested": "x" * 10}
    crafted["event"] = {"kind": "alert"}
    crafted["SequenceNo"] = 7_100_000_000_000_000_001  # this test's own event
    send_mtls(s, pki, [orjson.dumps(crafted)])
    client = es_admin(s)
    query = {"term": {"panw.panos.sequence_number": crafted["SequenceNo"]}}
    deadline = time.monotonic() + 90
    hits: list = []
    while not hits and time.monotonic() < deadline:
        time.sleep(0.5)
        if not client.indices.exists_alias(name=s.index_prefix):
            continue  # the first document creates the daily index
        client.indices.refresh(index=s.index_prefix)
        hits = client.search(index=s.index_prefix, query=query)["hits"]["hits"]
    assert hits, "the crafted log was not indexed"
    assert hits[0]["_source"]["event"]["kind"] == "event"
    mapping = client.indices.get_mapping(index=f"{s.index_prefix}-*")
    client.close()
    for index in mapping.body.values():
        assert "crafted_field_7c1e" not in orjson.dumps(index["mappings"]).decode()


def test_worker_web_server_listens_on_loopback_only(secure_run) -> None:
    s, _services, _folder = secure_run
    assert s.web_bind == "127.0.0.1"  # the default
    owners = procs.parse_ss(
        subprocess.run(["ss", "-Hltn"], capture_output=True, text=True, check=True).stdout
    )
    assert s.web_port in owners
    listening = subprocess.run(
        ["ss", "-Hltn", f"sport = :{s.web_port}"], capture_output=True, text=True, check=True
    ).stdout.split()
    assert f"127.0.0.1:{s.web_port}" in listening
    assert not any(
        word.endswith(f":{s.web_port}") and not word.startswith("127.0.0.1:") for word in listening
    )
    outward = _non_loopback_address()
    if outward is not None:
        with pytest.raises(OSError):
            socket.create_connection((outward, s.web_port), timeout=2).close()


def _non_loopback_address() -> str | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # no packet is sent: this only picks a route
        except OSError:
            return None
        address = probe.getsockname()[0]
    return None if address.startswith("127.") else address


def test_secrets_appear_nowhere(secure_run, pki) -> None:
    s, services, folder = secure_run
    send_mtls(s, pki, [BAD_LINE])
    letters = dead_letters(s, 1)
    # the encoded key the pipeline sends, and the secret half of its "id:secret"
    key_secret = base64.b64decode(s.es_api_key).decode().split(":", 1)[1]
    secrets = [KAFKA_PASSWORD, ES_PASSWORD, TLS_KEY_PASSWORD, s.es_api_key, key_secret]
    seen: dict[str, str] = {}
    for letter in letters:
        seen["dead letter"] = seen.get("dead letter", "") + orjson.dumps(letter).decode()
    for port, name in ((s.ingest_metrics_port, "ingest"), (s.web_port, "worker")):
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
            seen[f"{name} /metrics"] = answer.read().decode()
    for args in (["stack", "status", "--json"], ["stack", "status"], ["setup", "--check"]):
        done = subprocess.run(
            [sys.executable, "-m", "pipeline", *args],
            env=settings_env(s), capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        seen[" ".join(args)] = done.stdout + done.stderr
    services.stop()
    for log in [*(folder / "logs").glob("*.log"), folder / "setup.log"]:
        seen[log.name] = log.read_text(errors="replace")
    assert "not_panos" in seen["dead letter"] or "parse" in seen["dead letter"]
    assert "decryptscope_" in seen["ingest /metrics"]
    assert "decryptscope_" in seen["worker /metrics"]
    assert "no drift" in seen["setup --check"]  # the key in the grep is one that works
    leaks = [
        (where, secret) for where, text in seen.items() for secret in secrets if secret in text
    ]
    assert leaks == []
