"""Syslog listeners -> the real Kafka: messages unchanged, keyed by serial, with headers;
backpressure on TCP when the buffer is full, counted drops on UDP, none lost on TCP."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import socket
import ssl
import subprocess

import pytest
from kafka import KafkaConsumer
from kafka.admin import KafkaAdminClient, NewTopic
from prometheus_client import CollectorRegistry

from pipeline.metrics import build_metrics
from pipeline.syslog.listeners import SyslogServer
from pipeline.syslog.publisher import Publisher

pytestmark = pytest.mark.integration

SERIAL = "007051000184334"
CSV = (
    "<14>Nov 30 16:09:33 PA-220 1,2021/11/11 15:42:44,{serial},DECRYPTION,0,2561,"
    "2021/11/11 15:42:44,192.0.2.10,198.51.100.20,n={n}"
)


def line(n: int, serial: str = SERIAL) -> bytes:
    return CSV.format(serial=serial, n=n).encode()


@pytest.fixture
def topic(settings, run_prefix, request) -> str:
    name = f"{run_prefix}.{request.node.name[:40]}.raw".replace("[", "-").replace("]", "")
    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    admin.create_topics([NewTopic(name, 2, 1)])
    admin.close()
    return name


def consume(settings, topic: str, count: int, timeout_ms: int = 20000) -> list:
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=settings.kafka_bootstrap,
        auto_offset_reset="earliest",
        consumer_timeout_ms=timeout_ms,
    )
    out = []
    for message in consumer:
        out.append(message)
        if len(out) >= count:
            break
    consumer.close()
    return out


def ingest_settings(settings, topic: str, **changes):
    return dataclasses.replace(
        settings,
        topic_raw=topic,
        syslog_bind="127.0.0.1",
        syslog_udp_port=0,
        syslog_tcp_port=0,
        syslog_tls_port=0,
        **changes,
    )


async def send_tcp(address, data: bytes, context: ssl.SSLContext | None = None) -> None:
    _reader, writer = await asyncio.open_connection(*address, ssl=context)
    writer.write(data)
    await writer.drain()
    writer.write_eof() if context is None else None
    writer.close()
    await writer.wait_closed()


async def test_udp_tcp_tls_reach_kafka_unchanged(settings, topic, tls_files) -> None:
    cert, key = tls_files
    s = ingest_settings(settings, topic, syslog_tls_cert=cert, syslog_tls_key=key)
    publisher = Publisher(s)
    await asyncio.to_thread(publisher.start_producer)
    publisher.start()
    server = SyslogServer(s, publisher, build_metrics(CollectorRegistry()))
    await server.start()
    try:
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        udp.sendto(line(1) + b"\n", tuple(server.addresses["udp"]))
        udp.close()
        await send_tcp(server.addresses["tcp"], line(2) + b"\n" + line(3, "0123456789") + b"\n")
        framed = b"".join(b"%d %s" % (len(m), m) for m in (line(4), line(5)))
        await send_tcp(server.addresses["tcp"], framed)
        context = ssl.create_default_context(cafile=cert)
        await send_tcp(server.addresses["tls"], line(6) + b"\n", context)
        await asyncio.sleep(0.5)
    finally:
        await server.stop()
        assert await publisher.close(30)
    messages = consume(settings, topic, 6)
    by_value = {m.value: m for m in messages}
    assert set(by_value) == {line(n) for n in (1, 2, 4, 5, 6)} | {line(3, "0123456789")}
    assert by_value[line(3, "0123456789")].key == b"0123456789"
    assert by_value[line(6)].key == SERIAL.encode()
    headers = dict(by_value[line(1)].headers)
    assert headers["sender"].startswith(b"127.0.0.1:")
    assert int(headers["received_at"]) > 1_700_000_000_000
    assert server.stats.received == {"udp": 1, "tcp": 4, "tls": 1}


async def test_full_buffer_pauses_tcp_and_drops_udp_but_loses_no_tcp(settings, topic) -> None:
    s = ingest_settings(settings, topic, ingest_buffer_bytes=4000)
    publisher = Publisher(s)
    await asyncio.to_thread(publisher.start_producer)
    metrics = build_metrics(CollectorRegistry())
    server = SyslogServer(s, publisher, metrics)
    # The sender thread is not started yet: nothing drains, the buffer fills up.
    server_loop_started = asyncio.get_running_loop()
    await server.start()
    count = 2000
    payload = b"".join(line(n) + b"\n" for n in range(count))
    sender = asyncio.create_task(send_tcp(server.addresses["tcp"], payload))
    await asyncio.sleep(1.0)
    assert publisher.full
    assert any(conn.paused for conn in server.connections)
    assert server.stats.received["tcp"] < count
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.sendto(line(99999) + b"\n", tuple(server.addresses["udp"]))
    udp.close()
    await asyncio.sleep(0.3)
    assert server.stats.udp_dropped == 1
    assert metrics.syslog_dropped.labels("udp", "buffer_full")._value.get() == 1
    assert server_loop_started is asyncio.get_running_loop()
    publisher.start()  # Kafka drains the buffer; reading resumes
    await asyncio.wait_for(sender, 60)
    for _ in range(300):
        if server.stats.received["tcp"] == count and not server.connections:
            break
        await asyncio.sleep(0.1)
    await server.stop()
    assert await publisher.close(60)
    values = [m.value for m in consume(settings, topic, count)]
    assert sorted(values) == sorted(line(n) for n in range(count))


async def test_oversized_messages_are_cut_and_counted(settings, topic) -> None:
    s = ingest_settings(settings, topic, max_message_bytes=200)
    publisher = Publisher(s)
    await asyncio.to_thread(publisher.start_producer)
    publisher.start()
    server = SyslogServer(s, publisher, build_metrics(CollectorRegistry()))
    await server.start()
    long_line = line(1) + b"," + b"x" * 500
    await send_tcp(server.addresses["tcp"], long_line + b"\n" + line(2) + b"\n")
    await asyncio.sleep(0.3)
    await server.stop()
    assert await publisher.close(30)
    values = {m.value for m in consume(settings, topic, 2)}
    assert values == {long_line[:200], line(2)}
    assert server.stats.truncated == 1


async def test_connection_cap_and_idle_timeout(settings, topic) -> None:
    s = ingest_settings(settings, topic, max_connections=1, idle_timeout_s=0.5)
    publisher = Publisher(s)
    await asyncio.to_thread(publisher.start_producer)
    publisher.start()
    server = SyslogServer(s, publisher, build_metrics(CollectorRegistry()))
    await server.start(udp=False)
    try:
        _r1, w1 = await asyncio.open_connection(*server.addresses["tcp"])
        await asyncio.sleep(0.1)
        r2, _w2 = await asyncio.open_connection(*server.addresses["tcp"])
        assert await asyncio.wait_for(r2.read(), 5) == b""  # refused: closed at once
        assert server.stats.rejected_connections == 1
        await asyncio.sleep(1.5)
        assert server.stats.idle_closed == 1
        assert not server.connections
        w1.close()
    finally:
        await server.stop()
        await publisher.close(10)


async def test_tls_client_certificates_are_required_when_a_client_ca_is_set(
    settings, topic, tls_files, tmp_path
) -> None:
    cert, key = tls_files
    client_cert, client_key = tmp_path / "client.pem", tmp_path / "client-key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=firewall-1", "-keyout", str(client_key), "-out", str(client_cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    s = ingest_settings(
        settings,
        topic,
        syslog_tls_cert=cert,
        syslog_tls_key=key,
        syslog_tls_client_ca=str(client_cert),  # self-signed: its own CA
    )
    publisher = Publisher(s)
    await asyncio.to_thread(publisher.start_producer)
    publisher.start()
    server = SyslogServer(s, publisher, build_metrics(CollectorRegistry()))
    await server.start(udp=False, tcp=False)
    try:
        anonymous = ssl.create_default_context(cafile=cert)
        # With TLS 1.3 the client may finish its side of the handshake before the server
        # refuses it: then the refusal shows as an alert or an end of stream on read.
        with contextlib.suppress(ssl.SSLError, ConnectionError):
            reader, writer = await asyncio.open_connection(*server.addresses["tls"], ssl=anonymous)
            writer.write(line(1) + b"\n")
            await writer.drain()
            assert await asyncio.wait_for(reader.read(), 5) == b""
        trusted = ssl.create_default_context(cafile=cert)
        trusted.load_cert_chain(str(client_cert), str(client_key))
        await send_tcp(server.addresses["tls"], line(2) + b"\n", trusted)
        await asyncio.sleep(0.5)
    finally:
        await server.stop()
        assert await publisher.close(30)
    assert [m.value for m in consume(settings, topic, 1)] == [line(2)]
    assert server.stats.received["tls"] == 1
