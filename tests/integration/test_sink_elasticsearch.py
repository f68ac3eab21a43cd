"""The Elasticsearch sink on the real cluster: idempotent ids, refused documents returned for
the dead-letter topic, retries (429 and connection errors) that end with everything indexed."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import socket

import pytest
from prometheus_client import CollectorRegistry

from pipeline.metrics import build_metrics
from pipeline.sinks import es_templates
from pipeline.sinks.elasticsearch import BulkWriter, make_client

pytestmark = pytest.mark.integration

DAY = "2026-02-03"


def doc(n: int, **extra) -> dict:
    body = {
        "@timestamp": f"{DAY}T10:00:{n % 60:02d}+00:00",
        "event": {"kind": "event", "category": ["network"], "reason": f"r{n}"},
        "observer": {"serial_number": "007051000184334"},
        "decryptscope": {"failure": n % 2 == 0},
    }
    body.update(extra)
    return body


@pytest.fixture
def prefix(run_prefix, request, es_client) -> str:
    name = f"{run_prefix}-{request.node.name[:30]}".lower().replace("_", "-")
    es_templates.setup_elasticsearch(es_client, name)
    yield name
    es_client.indices.delete(index=f"{name}-*", ignore_unavailable=True)
    es_client.indices.delete_index_template(name=name)


def writer_for(settings, prefix: str, url: str | None = None) -> BulkWriter:
    s = dataclasses.replace(settings, es_url=url or settings.es_url, bulk_backoff_max_s=0.5)
    return BulkWriter(
        make_client(s), s, metrics=build_metrics(CollectorRegistry()), index_prefix=prefix
    )


def count(es_client, prefix: str) -> int:
    es_client.indices.refresh(index=prefix)
    return es_client.count(index=prefix)["count"]


async def test_same_ids_twice_leave_the_count_unchanged(settings, es_client, prefix) -> None:
    writer = writer_for(settings, prefix)
    docs = [(f"id-{n}", doc(n)) for n in range(50)]
    try:
        assert await writer.write(docs) == []
        assert await writer.write(docs) == []
    finally:
        await writer.client.close()
    assert count(es_client, prefix) == 50
    assert es_client.indices.exists(index=f"{prefix}-2026.02.03")
    assert (
        prefix
        in es_client.indices.get_alias(index=f"{prefix}-2026.02.03")[f"{prefix}-2026.02.03"][
            "aliases"
        ]
    )


async def test_refused_documents_come_back_the_rest_is_indexed(settings, es_client, prefix):
    writer = writer_for(settings, prefix)
    docs = [(f"id-{n}", doc(n)) for n in range(10)]
    docs[3] = ("bad-unknown", doc(3, not_ecs={"x": 1}))  # strict mapping
    docs[7] = ("bad-type", doc(7, decryptscope={"failure": True, "confidence": "very"}))
    try:
        rejected = await writer.write(docs)
    finally:
        await writer.client.close()
    assert {r.doc_id for r in rejected} == {"bad-unknown", "bad-type"}
    by_id = {r.doc_id: r for r in rejected}
    assert by_id["bad-unknown"].error_type == "strict_dynamic_mapping_exception"
    assert by_id["bad-unknown"].status == 400
    assert by_id["bad-type"].document["decryptscope"]["confidence"] == "very"
    assert count(es_client, prefix) == 8


async def test_429_from_a_blocked_index_is_retried_until_it_clears(settings, es_client, prefix):
    index = f"{prefix}-2026.02.03"
    es_client.indices.create(index=index)
    es_client.indices.put_settings(
        index=index, settings={"index.blocks.read_only_allow_delete": True}
    )
    writer = writer_for(settings, prefix)
    task = asyncio.create_task(writer.write([(f"id-{n}", doc(n)) for n in range(20)]))
    try:
        await asyncio.sleep(1.5)
        assert not task.done()
        assert writer.retries >= 1
        es_client.indices.put_settings(
            index=index, settings={"index.blocks.read_only_allow_delete": None}
        )
        assert await asyncio.wait_for(task, 30) == []
    finally:
        await writer.client.close()
    assert count(es_client, prefix) == 20


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    writer.close()


async def test_connection_errors_are_retried_until_elasticsearch_is_reachable(
    settings, es_client, prefix
) -> None:
    """The writer starts while nothing listens on its address; a relay to the real cluster
    comes up a little later and the batch goes through complete."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    es_host, es_port = settings.es_url.rsplit("/", 1)[-1].split(":")

    async def relay(reader, writer):
        up_reader, up_writer = await asyncio.open_connection(es_host, int(es_port))
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))

    writer = writer_for(settings, prefix, url=f"http://127.0.0.1:{port}")
    task = asyncio.create_task(writer.write([(f"id-{n}", doc(n)) for n in range(30)]))
    await asyncio.sleep(1.0)
    assert not task.done()
    assert writer.retries >= 1
    server = await asyncio.start_server(relay, "127.0.0.1", port)
    try:
        assert await asyncio.wait_for(task, 30) == []
    finally:
        await writer.client.close()
        server.close()
    assert count(es_client, prefix) == 30
