"""Kafka over TLS with client certificates (``ssl.client.auth=required``, no SASL): ``setup``,
the ingest producer (kafka-python) and the Faust worker (aiokafka: consumer, producer,
changelog) all authenticate with ``kafka_ssl_certfile``/``kafka_ssl_keyfile`` and every line of
the sample reaches Elasticsearch; without a certificate, or with one from a CA the broker does
not trust, each command stops at once with the project's error naming the settings to fix."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import TLS_KEY_PASSWORD
from elasticsearch import helpers

from pipeline.commands import replay
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


def mtls_settings(settings, secure_kafka, pki, tag: str, folder: Path, **changes):
    values = {
        "kafka_bootstrap": secure_kafka.ssl,
        "kafka_security_protocol": "SSL",
        "kafka_ssl_cafile": str(pki.ca.cert_path),
        "kafka_ssl_certfile": str(pki.client_locked.cert),
        "kafka_ssl_keyfile": str(pki.client_locked.key),
        "kafka_ssl_key_password": TLS_KEY_PASSWORD,
        "batch_max_wait_s": 0.3,
    }
    return isolated_settings(settings, tag, folder / "worker", **{**values, **changes})


def run(command: str, s) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pipeline", command],
        env=settings_env(s), capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip


def test_setup_ingest_and_worker_run_over_mutual_tls(
    settings, run_prefix, secure_kafka, *, pki, es_client, tmp_path
) -> None:
    s = mtls_settings(settings, secure_kafka, pki, f"{run_prefix}-mtls", tmp_path)
    setup = run("setup", s)
    assert setup.returncode == 0, setup.stderr
    lines = replay.read_lines([SAMPLE])
    wanted = expected_ids(sample_lines()[0])
    services = Services(s, tmp_path / "logs").start()
    try:
        sent = replay.replay(
            replay.prepare(lines, now=False), replay.Target("tcp", "127.0.0.1", s.syslog_tcp_port)
        )
        assert sent == len(lines)
        assert wait_for_count(es_client, s.index_prefix, len(wanted), timeout=180) == len(wanted)
        es_client.indices.refresh(index=s.index_prefix)
        found = {
            h["_id"]
            for h in helpers.scan(
                es_client, index=s.index_prefix, _source=False, query={"query": LOG_DOCUMENTS}
            )
        }
        assert found == wanted
        services.check_alive()
    finally:
        codes = services.stop()
    assert codes["ingest"] == 0
    logs = "".join(p.read_text(errors="replace") for p in (tmp_path / "logs").glob("*.log"))
    assert TLS_KEY_PASSWORD not in logs + setup.stdout + setup.stderr


@pytest.mark.parametrize("command", ["setup", "ingest", "worker"])
@pytest.mark.parametrize("client", ["none", "untrusted"])
def test_a_missing_or_untrusted_client_certificate_is_a_clear_error(
    settings, run_prefix, secure_kafka, *, pki, tmp_path, command, client
) -> None:
    certificate = {
        "none": {"kafka_ssl_certfile": "", "kafka_ssl_keyfile": "", "kafka_ssl_key_password": ""},
        "untrusted": {
            "kafka_ssl_certfile": str(pki.rogue_client.cert),
            "kafka_ssl_keyfile": str(pki.rogue_client.key),
            "kafka_ssl_key_password": "",
        },
    }[client]
    s = mtls_settings(
        settings, secure_kafka, pki, f"{run_prefix}-nocert-{client}", tmp_path, **certificate
    )
    done = run(command, s)
    assert done.returncode == 1, done.stderr[-2000:]
    assert f"decryptscope {command}:" in done.stderr
    assert "kafka_ssl_certfile" in done.stderr, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
