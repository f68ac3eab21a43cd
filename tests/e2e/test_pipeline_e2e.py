"""End to end on the real stack: syslog over UDP, TCP and TLS -> ingest -> Kafka -> worker ->
Elasticsearch, with dead letters, session correlation and idempotent replays.

Each test runs its own ``ingest`` and ``worker`` subprocesses on its own ports, topics, index
prefix and consumer group (all starting with the run prefix, removed at the end of the run)."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from kafka import KafkaConsumer

from pipeline.commands import replay
from pipeline.commands.setup import setup
from tests.harness import (
    SAMPLE,
    Services,
    expected_ids,
    isolated_settings,
    sample_lines,
    wait_for_count,
)

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

GOLDEN = Path(__file__).resolve().parent.parent / "golden" / "diagnosis"


def golden_lines(case: str) -> list[bytes]:
    return replay.read_lines([GOLDEN / f"{case}.log"])


def single_line_cases() -> dict[str, tuple[bytes, str | None]]:
    """Golden cases made of one log line: line and expected cause."""
    out = {}
    for log in sorted(GOLDEN.glob("*.log")):
        lines = replay.read_lines([log])
        expected = orjson.loads(log.with_suffix(".expected.json").read_bytes())
        if len(lines) == 1 and lines[0].startswith(b"<") and len(expected_ids(lines)) == 1:
            out[log.stem] = (lines[0], expected.get("cause"))
    return out


@pytest.fixture
def run(settings, run_prefix, request, tmp_path, tls_files):
    """Settings of this test's pipeline, set up, with ingest and worker running."""
    tag = f"{run_prefix}-{request.node.name[5:25]}".lower().replace("_", "-").strip("-[]")
    tag = tag.replace("[", "-").replace("]", "")
    cert, key = tls_files
    s = isolated_settings(
        settings,
        tag,
        tmp_path / "worker",
        syslog_tls_cert=cert,
        syslog_tls_key=key,
        batch_max_wait_s=0.3,
    )
    assert setup(s) == 0
    services = Services(s, tmp_path / "logs").start()
    try:
        yield s
        services.check_alive()
    finally:
        codes = services.stop()
        assert codes["ingest"] == 0, (tmp_path / "logs" / "ingest.log").read_text()[-2000:]


def send(s, scheme: str, lines: list[bytes], **options) -> None:
    port = {"udp": s.syslog_udp_port, "tcp": s.syslog_tcp_port, "tls": s.syslog_tls_port}[scheme]
    target = replay.Target(scheme, "127.0.0.1", port)
    if scheme == "tls":
        options.setdefault("cafile", s.syslog_tls_cert)
    assert replay.replay(replay.prepare(lines, now=False), target, **options) == len(lines)


def search(es_client, s, query: dict) -> list[dict]:
    es_client.indices.refresh(index=s.index_prefix)
    return es_client.search(index=s.index_prefix, query=query, size=100)["hits"]["hits"]


def test_udp_tcp_and_tls_lines_become_documents_with_their_causes(run, es_client) -> None:
    cases = single_line_cases()
    names = sorted(cases)
    assert len(names) >= 12
    thirds = [names[0::3], names[1::3], names[2::3]]
    send(run, "udp", [cases[n][0] for n in thirds[0]])
    send(run, "tcp", [cases[n][0] for n in thirds[1]])
    send(run, "tls", [cases[n][0] for n in thirds[2]], octet_counting=True)
    wanted = expected_ids(cases[n][0] for n in names)
    assert wait_for_count(es_client, run.index_prefix, len(wanted)) == len(wanted)
    hits = search(es_client, run, {"match_all": {}})
    assert {h["_id"] for h in hits} == wanted
    for name in names:
        line, cause = cases[name]
        [doc_id] = expected_ids([line])
        if cause is None:
            found = search(es_client, run, {"ids": {"values": [doc_id]}})
            assert "cause" not in found[0]["_source"]["decryptscope"], name
            assert found[0]["_source"]["decryptscope"]["failure"] is False, name
        else:
            by_cause = search(es_client, run, {"term": {"decryptscope.cause": cause}})
            assert doc_id in {h["_id"] for h in by_cause}, name
    one = search(es_client, run, {"exists": {"field": "network.community_id"}})[0]
    community = one["_source"]["network"]["community_id"]
    by_community = search(es_client, run, {"term": {"network.community_id": community}})
    assert one["_id"] in {h["_id"] for h in by_community}
    assert one["_source"]["event"]["original"].startswith("<")


def test_malformed_lines_are_dead_lettered_and_not_indexed(run, es_client) -> None:
    good = golden_lines("server-cert-expired")
    bad = [
        b"<14>Nov 20 10:15:09 fw-edge-01 this is not a PAN-OS log line",
        b"<14>Nov 20 10:15:09 fw-edge-01 1,2026/11/20 10:15:09,012801096514,DECRYPTION,0",
        b"<14>Nov 20 10:15:09 fw-edge-01 1,2026/13/45 99:99:99,012801096514,TRAFFIC,end,2561,x,y",
    ]
    send(run, "tcp", [bad[0], good[0], bad[1], bad[2]])
    consumer = KafkaConsumer(
        run.topic_dlq,
        bootstrap_servers=run.kafka_bootstrap,
        auto_offset_reset="earliest",
        consumer_timeout_ms=60000,
    )
    letters = []
    for message in consumer:
        letters.append(orjson.loads(message.value))
        if len(letters) == len(bad):
            break
    consumer.close()
    assert sorted(x["original"] for x in letters) == sorted(b.decode() for b in bad)
    for letter in letters:
        assert letter["stage"] == "parse"
        assert letter["error_type"] and letter["message"]
        assert letter["topic"] == run.topic_raw
    assert wait_for_count(es_client, run.index_prefix, 1) == 1
    [hit] = search(es_client, run, {"match_all": {}})
    assert hit["_source"]["decryptscope"]["cause"] == "server-cert-expired"


@pytest.mark.parametrize("order", ["traffic-first", "decryption-first"])
def test_traffic_and_decryption_lines_are_correlated_in_either_order(run, es_client, order):
    traffic, decryption = golden_lines("decrypt-error-joined")
    assert b",TRAFFIC," in traffic and b",DECRYPTION," in decryption
    send(run, "tcp", [traffic, decryption] if order == "traffic-first" else [decryption, traffic])
    ids = expected_ids([traffic])
    query = {"term": {"decryptscope.correlation.count": 2}}
    assert wait_for_count(es_client, run.index_prefix, 2, query=query) == 2
    [hit] = search(es_client, run, {"ids": {"values": list(ids)}})
    ds = hit["_source"]["decryptscope"]
    assert ds["cause"] == "client-rejected-firewall-cert"
    assert ds["correlation"]["key"] == "012801096514:1026"
    assert sorted(ds["correlation"]["joined"]) == ["DECRYPTION", "TRAFFIC"]


def test_replaying_the_same_file_twice_leaves_the_count_unchanged(run, es_client) -> None:
    lines = replay.read_lines([SAMPLE])
    wanted = len(expected_ids(sample_lines()[0]))
    send(run, "tcp", lines)
    assert wait_for_count(es_client, run.index_prefix, wanted) == wanted
    send(run, "tcp", lines, octet_counting=True)
    send(run, "tls", lines)
    # the second and third copies are through the pipeline once the DLQ holds all 3 copies
    # of the sample's two bad lines
    consumer = KafkaConsumer(
        run.topic_dlq,
        bootstrap_servers=run.kafka_bootstrap,
        auto_offset_reset="earliest",
        consumer_timeout_ms=60000,
    )
    seen = 0
    for _message in consumer:
        seen += 1
        if seen == 6:
            break
    consumer.close()
    assert seen == 6
    assert wait_for_count(es_client, run.index_prefix, wanted + 1, timeout=5) == wanted
