"""Decryption events that are not failures carry their mode into Elasticsearch: the strict
event template takes ``decryptscope.mode`` on them, and decrypted vs not decrypted sessions can
be counted by mode."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from pipeline.ecs import document_id, to_ecs
from pipeline.panos import parse_line
from pipeline.sinks import es_templates
from pipeline.sinks.elasticsearch import BulkWriter, make_client

pytestmark = pytest.mark.integration

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "diagnosis"
# (case, mode from its Proxy Type column or its TRAFFIC Flags) — see the cases' headings.
CASES = {
    "none-successful-handshake": "forward-proxy",
    "none-no-decrypt": "no-decrypt",
    "none-tcp-fin": "unknown",
    "none-policy-deny": None,
}


def document(case: str) -> dict:
    text = (GOLDEN / f"{case}.log").read_text(encoding="utf-8")
    return to_ecs(parse_line(next(t for t in text.splitlines() if t and not t.startswith("#"))))


async def test_non_failures_are_indexed_with_their_mode(settings, run_prefix, es_client) -> None:
    prefix = f"{run_prefix}-modes-events"
    es_templates.setup_elasticsearch(es_client, prefix)
    docs = {case: document(case) for case in CASES}
    s = dataclasses.replace(settings, index_prefix=prefix)
    writer = BulkWriter(make_client(s), s)
    try:
        rejected = await writer.write(
            [(f"{case}:{document_id(doc)}", doc) for case, doc in docs.items()]
        )
    finally:
        await writer.client.close()
    assert rejected == []

    es_client.indices.refresh(index=prefix)
    found = es_client.search(
        index=prefix,
        size=0,
        query={"term": {"decryptscope.failure": False}},
        aggs={"modes": {"terms": {"field": "decryptscope.mode", "missing": "none"}}},
    )
    counts = {b["key"]: b["doc_count"] for b in found["aggregations"]["modes"]["buckets"]}
    assert counts == {"forward-proxy": 1, "no-decrypt": 1, "unknown": 1, "none": 1}
