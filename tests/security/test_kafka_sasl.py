"""Kafka with SASL/SCRAM-SHA-512, plain and over TLS: the ingest producer (kafka-python) gets
its messages through with the right credentials; with a wrong password or an untrusted broker
certificate ``ingest``, ``worker`` and ``setup`` stop at once with the project's error naming the
setting to fix, and never print the password."""

from __future__ import annotations

import asyncio
import dataclasses
import subprocess
import sys
import time

import pytest
from conftest import KAFKA_PASSWORD, KAFKA_USER
from kafka import KafkaConsumer
from kafka.admin import KafkaAdminClient, NewTopic

from pipeline import kafka_config
from pipeline.syslog.publisher import Publisher
from tests.harness import free_port, settings_env

pytestmark = pytest.mark.integration

WRONG = "definitely-Wrong-pw-0d4e"


def sasl_settings(settings, secure_kafka, run_prefix, **changes):
    values = {
        "kafka_bootstrap": secure_kafka.sasl_plaintext,
        "kafka_security_protocol": "SASL_PLAINTEXT",
        "kafka_sasl_username": KAFKA_USER,
        "kafka_sasl_password": KAFKA_PASSWORD,
        "topic_raw": f"{run_prefix}.sasl.raw",
        "worker_id": f"{run_prefix}-sasl",
        "syslog_udp_port": free_port(),
        "syslog_tcp_port": free_port(),
        "ingest_metrics_port": free_port(),
        "web_port": free_port(),
    }
    return dataclasses.replace(settings, **{**values, **changes})


async def test_the_ingest_producer_publishes_over_sasl_plaintext(
    settings, secure_kafka, run_prefix
) -> None:
    s = sasl_settings(settings, secure_kafka, run_prefix)
    admin = KafkaAdminClient(**kafka_config.admin_kwargs(s))
    admin.create_topics([NewTopic(s.topic_raw, 1, 1)])
    admin.close()
    publisher = Publisher(s)
    await asyncio.to_thread(kafka_config.preflight, s, "test")
    await asyncio.to_thread(publisher.start_producer)
    publisher.start()
    for n in range(20):
        publisher.offer(b"message %d" % n, b"key", "192.0.2.1:514", 0)
    assert await publisher.close(30)
    consumer = KafkaConsumer(
        s.topic_raw,
        **kafka_config.consumer_kwargs(s, auto_offset_reset="earliest", consumer_timeout_ms=20000),
    )
    values = []
    for message in consumer:
        values.append(message.value)
        if len(values) == 20:
            break
    consumer.close()
    assert sorted(values) == sorted(b"message %d" % n for n in range(20))


@pytest.mark.parametrize("command", ["ingest", "worker", "setup"])
def test_a_wrong_password_stops_the_command_with_a_clear_error(
    settings, secure_kafka, run_prefix, tmp_path, command
) -> None:
    s = sasl_settings(
        settings,
        secure_kafka,
        run_prefix,
        kafka_sasl_password=WRONG,
        worker_data_dir=str(tmp_path / "worker"),
    )
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "pipeline", command],
        env=settings_env(s), capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr[-2000:]
    assert time.monotonic() - started < 120  # no hang: the timeout above would have fired
    assert f"decryptscope {command}:" in done.stderr
    assert "refused the credentials" in done.stderr
    assert "kafka_sasl_password" in done.stderr
    assert WRONG not in done.stdout + done.stderr


def test_an_untrusted_broker_certificate_names_kafka_ssl_cafile(
    settings, secure_kafka, run_prefix
) -> None:
    s = sasl_settings(
        settings,
        secure_kafka,
        run_prefix,
        kafka_bootstrap=secure_kafka.sasl_ssl,
        kafka_security_protocol="SASL_SSL",
        kafka_ssl_cafile="",
    )
    with pytest.raises(kafka_config.KafkaAuthError, match="kafka_ssl_cafile"):
        kafka_config.preflight(s, "ingest")


def test_tls_with_the_right_ca_passes_preflight(settings, secure_kafka, run_prefix, pki) -> None:
    s = sasl_settings(
        settings,
        secure_kafka,
        run_prefix,
        kafka_bootstrap=secure_kafka.sasl_ssl,
        kafka_security_protocol="SASL_SSL",
        kafka_ssl_cafile=str(pki.ca.cert_path),
    )
    kafka_config.preflight(s, "ingest")
    admin = KafkaAdminClient(**kafka_config.admin_kwargs(s))
    assert isinstance(admin.list_topics(), list)
    admin.close()
