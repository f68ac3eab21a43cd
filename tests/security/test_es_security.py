"""Elasticsearch with security on (TLS on HTTP, a file-realm user, API keys): setup and the bulk
sink work with basic auth + the CA, and with a real API key minted on the node holding the
role docs/operations.md documents; a wrong password, an unknown or invalidated API key or a
missing CA is one clear error naming the setting, and never shows the secret.

API keys live in the node's ``.security`` index, whose ``email`` analyzer needs components the
integ-test-zip lacks; the node gets them from the plugin ``pipeline/stack/es_plugin.py`` builds
(as the local stack's node does)."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest
from conftest import ES_PASSWORD, ES_USER, mint_api_key
from elasticsearch import Elasticsearch

from pipeline.sinks import es_auth, es_templates
from pipeline.sinks.elasticsearch import BulkWriter, make_client
from tests.harness import settings_env

pytestmark = pytest.mark.integration


def es_settings(settings, secure_es, prefix: str, **changes):
    values = {
        "es_url": secure_es.url,
        "es_ca_certs": str(secure_es.ca),
        "es_username": "",
        "es_password": "",
        "es_api_key": "",
        "index_prefix": f"{prefix}-events",
        "topic_raw": f"{prefix}.raw",
        "topic_events": f"{prefix}.events",
        "topic_alerts": f"{prefix}.alerts",
        "topic_dlq": f"{prefix}.dlq",
    }
    return dataclasses.replace(settings, **{**values, **changes})


def doc(n: int) -> tuple[str, dict]:
    return f"doc-{n}", {"@timestamp": "2026-11-20T10:00:00+00:00", "event": {"sequence": n}}


def admin(secure_es) -> Elasticsearch:
    return Elasticsearch(
        secure_es.url, ca_certs=str(secure_es.ca), basic_auth=(ES_USER, ES_PASSWORD)
    )


def run_cli(args: list[str], s) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pipeline", *args],
        env=settings_env(s),
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )


async def write_and_count(s, secure_es, n: int) -> int:
    client = make_client(s)
    try:
        writer = BulkWriter(client, s)
        assert await writer.write([doc(i) for i in range(n)]) == []
    finally:
        await client.close()
    check = admin(secure_es)
    check.indices.refresh(index=s.index_prefix)
    count = check.count(index=s.index_prefix)["count"]
    check.close()
    return count


async def test_setup_and_sink_work_with_basic_auth_and_the_ca(settings, secure_es, run_prefix):
    s = es_settings(
        settings, secure_es, f"{run_prefix}-basic", es_username=ES_USER, es_password=ES_PASSWORD
    )
    done = run_cli(["setup"], dataclasses.replace(s, kafka_bootstrap=settings.kafka_bootstrap))
    assert done.returncode == 0, done.stderr
    client = make_client(s, asynchronous=False)
    assert es_templates.check_elasticsearch(client, s.index_prefix) == []
    client.close()
    assert await write_and_count(s, secure_es, 5) == 5


def test_a_wrong_password_is_a_clear_error_without_the_password(settings, secure_es, run_prefix):
    wrong = "not-the-password-93b1"
    s = es_settings(
        settings, secure_es, f"{run_prefix}-wrong", es_username=ES_USER, es_password=wrong
    )
    done = run_cli(["setup"], s)
    assert done.returncode == 1
    assert "refused the credentials" in done.stderr
    assert "es_password" in done.stderr
    assert wrong not in done.stderr + done.stdout
    client = make_client(s, asynchronous=False)
    with pytest.raises(es_auth.ElasticsearchAuthError, match="es_username and es_password"):
        es_auth.preflight(client, s, "worker", reachable=False)
    client.close()


async def test_a_minted_api_key_runs_setup_and_the_sink(settings, secure_es, run_prefix):
    prefix = f"{run_prefix}-apikey"
    key_id, key = mint_api_key(secure_es, f"{prefix}-pipeline", f"{prefix}-events-*")
    s = es_settings(settings, secure_es, prefix, es_api_key=key)
    client = make_client(s, asynchronous=False)
    who = client.security.authenticate()
    assert who["authentication_type"] == "api_key"
    assert who["api_key"]["id"] == key_id
    done = run_cli(["setup"], s)
    assert done.returncode == 0, done.stderr
    assert es_templates.check_elasticsearch(client, s.index_prefix) == []
    client.close()
    assert await write_and_count(s, secure_es, 5) == 5
    assert key not in done.stdout + done.stderr


def test_an_invalidated_api_key_is_a_clear_error_without_the_key(settings, secure_es, run_prefix):
    prefix = f"{run_prefix}-revoked"
    key_id, key = mint_api_key(secure_es, f"{prefix}-pipeline", f"{prefix}-events-*")
    s = es_settings(settings, secure_es, prefix, es_api_key=key)
    client = make_client(s, asynchronous=False)
    es_auth.preflight(client, s, "setup")  # the key works ...
    check = admin(secure_es)
    invalidated = check.security.invalidate_api_key(ids=[key_id])
    check.close()
    assert invalidated["invalidated_api_keys"] == [key_id]
    with pytest.raises(es_auth.ElasticsearchAuthError, match="es_api_key") as refused:
        es_auth.preflight(client, s, "worker", reachable=False)  # ... and then no longer
    client.close()
    assert key not in str(refused.value)
    done = run_cli(["setup"], s)
    assert done.returncode == 1
    assert "refused the credentials" in done.stderr
    assert "API key (es_api_key)" in done.stderr
    assert key not in done.stderr + done.stdout


def test_a_wrong_api_key_is_a_clear_error(settings, secure_es, run_prefix):
    s = es_settings(settings, secure_es, f"{run_prefix}-wrongkey", es_api_key="Zm9vOmJhcg==")
    client = make_client(s, asynchronous=False)
    with pytest.raises(es_auth.ElasticsearchAuthError, match="es_api_key"):
        es_auth.preflight(client, s, "setup")
    client.close()


def test_an_untrusted_certificate_names_es_ca_certs(settings, secure_es, run_prefix):
    s = es_settings(
        settings,
        secure_es,
        f"{run_prefix}-noca",
        es_username=ES_USER,
        es_password=ES_PASSWORD,
        es_ca_certs="",
    )
    client = make_client(s, asynchronous=False)
    with pytest.raises(es_auth.ElasticsearchAuthError, match="es_ca_certs"):
        es_auth.preflight(client, s, "setup")
    client.close()


def test_plain_http_to_the_tls_port_gets_nothing(settings, secure_es, run_prefix):
    s = es_settings(settings, secure_es, f"{run_prefix}-http", es_username=ES_USER)
    s = dataclasses.replace(s, es_url=secure_es.url.replace("https://", "http://"), es_ca_certs="")
    client = make_client(s, asynchronous=False)
    with pytest.raises(Exception):  # noqa: B017 - any failure: no data over plain HTTP
        client.cluster.health()
    client.close()
