"""Bad input at the edges of the pipeline, on the real stack.

Listeners (in process, real sockets, real Kafka): a sender that trickles a message that never
ends is timed out; a flood from one sender does not starve the others.

Whole pipeline (``ingest`` + ``worker`` subprocesses): a message over ``max_message_bytes`` is
cut, counted and dead-lettered with the reason; invalid UTF-8 is kept as bytes (base64) in its
dead letter; a fuzz run of random and mutated lines (valid lines with one byte flipped among
them) ends with every line indexed or dead-lettered, and no process restarted."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import os
import random
import socket
import time
import urllib.request

import orjson
import pytest
from elasticsearch import helpers
from kafka import KafkaConsumer
from kafka.admin import KafkaAdminClient, NewTopic
from prometheus_client import CollectorRegistry

from pipeline.chain import Chain, ChainConfig, Message
from pipeline.commands import replay
from pipeline.commands.setup import setup
from pipeline.metrics import build_metrics
from pipeline.syslog.listeners import SyslogServer
from pipeline.syslog.publisher import Publisher
from tests.harness import SAMPLE, Services, isolated_settings, wait_for_count

pytestmark = pytest.mark.integration

# 100k lines, as CI runs it (~2-4 min); FUZZ_LINES=20000 for a quicker local run.
FUZZ_LINES = int(os.environ.get("FUZZ_LINES", "100000"))


def traffic_template() -> list[bytes]:
    for line in replay.read_lines([SAMPLE]):
        if b",TRAFFIC," in line:
            return line.replace(b",decrypt-error,", b",tcp-fin,").split(b",")
    raise AssertionError("no TRAFFIC line in the demo sample")


def numbered(fields: list[bytes], n: int) -> bytes:
    """A valid TRAFFIC end log whose session id and sequence number are ``n``."""
    out = list(fields)
    out[22] = b"%d" % (100000 + n)
    out[39] = b"%d" % (8000000000000000000 + n)
    return b",".join(out)


# --- listeners -----------------------------------------------------------------------------
@pytest.fixture
def raw_topic(settings, run_prefix, request) -> str:
    name = f"{run_prefix}.edges.{request.node.name[5:35]}"
    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    admin.create_topics([NewTopic(name, 1, 1)])
    admin.close()
    return name


def listener_settings(settings, topic: str, **changes):
    return dataclasses.replace(
        settings,
        topic_raw=topic,
        syslog_udp_port=0,
        syslog_tcp_port=0,
        syslog_tls_port=0,
        **changes,
    )


async def test_a_sender_trickling_a_never_ending_message_is_timed_out(settings, raw_topic):
    s = listener_settings(settings, raw_topic, idle_timeout_s=1.0)
    publisher = Publisher(s)
    await asyncio.to_thread(publisher.start_producer)
    publisher.start()
    server = SyslogServer(s, publisher, build_metrics(CollectorRegistry()))
    await server.start(udp=False)
    try:
        reader, writer = await asyncio.open_connection(*server.addresses["tcp"])
        closed = False
        for _ in range(100):  # up to 20 s of one byte every 0.2 s, never a newline
            writer.write(b"x")
            try:
                await writer.drain()
                data = await asyncio.wait_for(reader.read(1), 0.2)
            except TimeoutError:
                continue
            except ConnectionError:
                data = b""
            if data == b"":
                closed = True
                break
        writer.close()
        assert closed
        assert server.stats.idle_closed == 1
    finally:
        await server.stop()
        await publisher.close(10)


async def test_a_flood_from_one_sender_does_not_starve_the_others(settings, raw_topic):
    s = listener_settings(settings, raw_topic, ingest_buffer_bytes=256 * 1024)
    publisher = Publisher(s)
    await asyncio.to_thread(publisher.start_producer)
    publisher.start()
    server = SyslogServer(s, publisher, build_metrics(CollectorRegistry()))
    await server.start(udp=False)
    address = server.addresses["tcp"]
    stop_flood = asyncio.Event()
    flood_lines = 0

    async def flood() -> None:
        nonlocal flood_lines
        _r, w = await asyncio.open_connection(*address)
        chunk = b"".join(b"<14>Nov 20 10:00:00 flood flood line %d\n" % i for i in range(500))
        while not stop_flood.is_set():
            w.write(chunk)
            await w.drain()
            flood_lines += 500
        w.close()

    async def polite(who: int) -> None:
        _r, w = await asyncio.open_connection(*address)
        for i in range(50):
            w.write(b"<14>Nov 20 10:00:00 polite-%d line %d\n" % (who, i))
            await w.drain()
            await asyncio.sleep(0.01)
        w.write_eof()
        await w.drain()
        w.close()
        await w.wait_closed()

    flooder = asyncio.create_task(flood())
    try:
        await asyncio.sleep(1.0)
        await asyncio.wait_for(asyncio.gather(*(polite(i) for i in range(3))), 120)
        assert not flooder.done()  # the others got through while the flood went on
        assert flood_lines > 150
    finally:
        stop_flood.set()
        await asyncio.wait_for(flooder, 60)
        await server.stop()
        assert await publisher.close(120)
    consumer = KafkaConsumer(
        raw_topic,
        bootstrap_servers=s.kafka_bootstrap,
        auto_offset_reset="earliest",
        consumer_timeout_ms=15000,
    )
    polite_lines = {m.value for m in consumer if b" polite-" in m.value}
    consumer.close()
    assert polite_lines == {
        b"<14>Nov 20 10:00:00 polite-%d line %d" % (who, i) for who in range(3) for i in range(50)
    }


# --- the whole pipeline --------------------------------------------------------------------
@pytest.fixture(scope="module")
def pipeline_run(settings, run_prefix, stack, tmp_path_factory):
    tag = f"{run_prefix}-edges"
    folder = tmp_path_factory.mktemp("edges")
    s = isolated_settings(
        settings, tag, folder / "worker", max_message_bytes=4096, batch_max_wait_s=0.3
    )
    assert setup(s) == 0
    services = Services(s, folder / "logs").start()
    try:
        yield s, services
    finally:
        codes = services.stop()
        assert codes["ingest"] == 0, (folder / "logs" / "ingest.log").read_text()[-2000:]


def send_tcp(s, lines: list[bytes]) -> None:
    sock = socket.create_connection(("127.0.0.1", s.syslog_tcp_port), timeout=60)
    try:
        sock.sendall(b"".join(line + b"\n" for line in lines))
        sock.shutdown(socket.SHUT_WR)
        while sock.recv(4096):  # ingest closes after reading everything
            pass
    finally:
        sock.close()


def dead_letters(s, at_least: int, timeout_s: float = 120) -> list[dict]:
    consumer = KafkaConsumer(
        s.topic_dlq,
        bootstrap_servers=s.kafka_bootstrap,
        auto_offset_reset="earliest",
        consumer_timeout_ms=5000,
    )
    letters = [orjson.loads(m.value) for m in consumer]
    deadline = time.monotonic() + timeout_s
    while len(letters) < at_least and time.monotonic() < deadline:
        letters.extend(orjson.loads(m.value) for m in consumer)
    consumer.close()
    return letters


def test_oversized_and_invalid_utf8_messages_are_dead_lettered(pipeline_run) -> None:
    s, services = pipeline_run
    fields = traffic_template()
    oversized = numbered(fields, 1) + b"," + b"A" * (2 * s.max_message_bytes)
    not_utf8 = b"<14>Nov 20 10:15:09 fw \xff\xfe\xc3\x28 not a log \x80\x81"
    send_tcp(s, [oversized, not_utf8])
    letters = dead_letters(s, 2)
    cut = [x for x in letters if x["error_type"] == "oversized"]
    assert len(cut) == 1
    assert "max_message_bytes" in cut[0]["message"]
    assert cut[0]["original"] == oversized[: s.max_message_bytes].decode()
    binary = [x for x in letters if "original_b64" in x]
    assert [base64.b64decode(x["original_b64"]) for x in binary] == [not_utf8]
    with urllib.request.urlopen(f"http://127.0.0.1:{s.ingest_metrics_port}/metrics") as answer:
        exposition = answer.read().decode()
    assert 'decryptscope_syslog_dropped_total{reason="oversized",transport="tcp"} 1.0' in (
        exposition
    )
    services.check_alive()


def fuzz_lines(count: int, seed: int = 20261127) -> list[bytes]:
    rng = random.Random(seed)
    fields = traffic_template()
    forbidden = {0x0A, 0x0D}
    alphabet = [b for b in range(256) if b not in forbidden]
    lines = [numbered(fields, 0)]  # newline framing is decided by the first byte
    for n in range(1, count):
        kind = rng.random()
        if kind < 0.4:
            lines.append(numbered(fields, n))
        elif kind < 0.7:
            line = bytearray(numbered(fields, n))
            pos = rng.randrange(len(line))
            flipped = line[pos] ^ rng.randrange(1, 256)
            line[pos] = flipped if flipped not in forbidden else 0x20
            lines.append(bytes(line))
        elif kind < 0.85:
            size = rng.randrange(1, 300)
            data = bytes(rng.choices(alphabet, k=size))
            lines.append(data)
        else:
            parts = numbered(fields, n).split(b",")
            del parts[rng.randrange(1, len(parts))]
            cut = rng.randrange(10, len(parts))
            lines.append(b",".join(parts[:cut]))
    return lines


@pytest.mark.slow
def test_fuzzed_lines_are_all_indexed_or_dead_lettered(pipeline_run, es_client) -> None:
    s, services = pipeline_run
    lines = fuzz_lines(FUZZ_LINES)
    # what the worker must do with each line, computed with the same pure code
    result = Chain(ChainConfig.from_settings(s)).run(
        [Message(line) for line in lines], {}, time.time()
    )
    failures = len(result.dead_letters)
    wanted_ids = {d.doc_id for d in result.documents}
    assert failures > FUZZ_LINES // 10 and len(wanted_ids) > FUZZ_LINES // 3
    before = len(dead_letters(s, 0))
    send_tcp(s, lines)
    letters = dead_letters(s, before + failures, timeout_s=300)[before:]
    processed = [x for x in letters if x["stage"] != "index"]
    refused_by_es = [x for x in letters if x["stage"] == "index"]
    assert len(processed) == failures
    expected_docs = len(wanted_ids) - len(refused_by_es)
    # every document the chain gives, the change points' own included
    everything = {"match_all": {}}
    assert (
        wait_for_count(es_client, s.index_prefix, expected_docs, timeout=300, query=everything)
        == expected_docs
    )
    es_client.indices.refresh(index=s.index_prefix)
    indexed = {h["_id"] for h in helpers.scan(es_client, index=s.index_prefix, _source=False)}
    assert indexed <= wanted_ids
    assert len(indexed) + len(refused_by_es) == len(wanted_ids)
    services.check_alive()  # neither ingest nor the worker died on the way
