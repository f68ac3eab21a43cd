"""TLS syslog (RFC 5425) on a real ``decryptscope ingest``: with ``syslog_tls_client_ca`` set
only clients with a certificate from that CA get a message through; a client without a
certificate, one with a certificate from another CA and a plaintext sender on the TLS port get
nothing into Kafka and have their connection closed."""

from __future__ import annotations

import dataclasses
import socket
import ssl

import pytest
from conftest import TLS_KEY_PASSWORD
from kafka import KafkaConsumer
from kafka.admin import KafkaAdminClient, NewTopic

from tests.harness import Services, free_port

pytestmark = pytest.mark.integration

LINE = (
    "<14>Nov 20 10:15:03 fw-edge-01 1,2026/11/20 10:15:03,012801096514,DECRYPTION,0,2561,"
    "2026/11/20 10:15:03,192.0.2.10,203.0.113.20,from={who}"
)


def line(who: str) -> bytes:
    return LINE.format(who=who).encode()


@pytest.fixture
def mtls_ingest(settings, run_prefix, pki, tmp_path):
    topic = f"{run_prefix}.mtls.raw"
    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    admin.create_topics([NewTopic(topic, 1, 1)])
    admin.close()
    s = dataclasses.replace(
        settings,
        topic_raw=topic,
        syslog_udp_port=free_port(),
        syslog_tcp_port=free_port(),
        syslog_tls_port=free_port(),
        syslog_tls_cert=str(pki.server_locked.cert),
        syslog_tls_key=str(pki.server_locked.key),
        syslog_tls_key_password=TLS_KEY_PASSWORD,
        syslog_tls_client_ca=str(pki.ca.cert_path),
        ingest_metrics_port=free_port(),
    )
    services = Services(s, tmp_path / "logs").start(worker=False)
    try:
        yield s
    finally:
        assert services.stop()["ingest"] == 0


def tls_send(s, pki, data: bytes, cert=None) -> str | bytes | Exception:
    """Send over TLS, then listen: "open" when the server keeps the connection (syslog
    servers never answer), b"" when it closed it, or the error that ended it."""
    context = ssl.create_default_context(cafile=str(pki.ca.cert_path))
    if cert is not None:
        context.load_cert_chain(str(cert.cert), str(cert.key))
    raw = socket.create_connection(("127.0.0.1", s.syslog_tls_port), timeout=10)
    try:
        sock = context.wrap_socket(raw, server_hostname="127.0.0.1")
        sock.sendall(data)
        sock.settimeout(3)
        return sock.recv(100)
    except TimeoutError:
        return "open"
    except (OSError, ssl.SSLError) as exc:
        return exc
    finally:
        raw.close()


def plain_send(s, data: bytes) -> bytes | Exception:
    sock = socket.create_connection(("127.0.0.1", s.syslog_tls_port), timeout=10)
    try:
        sock.sendall(data)
        return sock.recv(100)
    except OSError as exc:
        return exc
    finally:
        sock.close()


def test_only_clients_with_a_trusted_certificate_get_through(mtls_ingest, pki) -> None:
    s = mtls_ingest
    no_cert = tls_send(s, pki, line("no-cert") + b"\n")
    rogue = tls_send(s, pki, line("rogue") + b"\n", pki.rogue_client)
    plain = plain_send(s, line("plaintext") + b"\n" * 600)
    # refused: an SSL error, a reset, or the server closing without accepting anything
    for answer in (no_cert, rogue):
        assert isinstance(answer, ssl.SSLError | ConnectionError) or answer == b"", answer
    assert isinstance(plain, Exception) or not plain.startswith(b"<"), plain
    assert tls_send(s, pki, line("trusted") + b"\n", pki.client) == "open"
    consumer = KafkaConsumer(
        s.topic_raw,
        bootstrap_servers=s.kafka_bootstrap,
        auto_offset_reset="earliest",
        consumer_timeout_ms=8000,
    )
    values = [message.value for message in consumer]
    consumer.close()
    assert values == [line("trusted")]
