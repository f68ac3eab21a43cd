"""Integers beyond 64 bits on the real cluster: the parser keeps them as text, the index
templates ignore them as malformed, and the rest of the document is indexed and searchable."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.ecs import document_id, to_ecs
from pipeline.panos import parse_line
from pipeline.sinks import es_templates
from pipeline.sinks.elasticsearch import index_for

pytestmark = pytest.mark.integration

LINE = (
    (Path(__file__).resolve().parents[1] / "golden" / "edge-oversized-integers.log")
    .read_text(encoding="utf-8")
    .splitlines()[1]
)


@pytest.fixture
def prefix(run_prefix, es_client) -> str:
    name = f"{run_prefix}-oversized".lower()
    es_templates.setup_elasticsearch(es_client, name)
    yield name
    es_client.indices.delete(index=f"{name}-*", ignore_unavailable=True)
    es_client.indices.delete_index_template(name=name)


def test_oversized_integers_are_kept_and_the_document_indexed(es_client, prefix) -> None:
    record = parse_line(LINE)
    doc = to_ecs(record)
    # The line's own values, as text: 2**65 bytes, 2**64 sent, a 21-digit sequence number.
    assert doc["network"]["bytes"] == "36893488147419103232"
    assert doc["source"]["bytes"] == "18446744073709551616"
    assert doc["panw"]["panos"]["sequence_number"] == "184467440737095516161"
    doc_id = document_id(record)
    es_client.index(index=index_for(doc, prefix), id=doc_id, document=doc, refresh=True)
    found = es_client.search(
        index=prefix, query={"term": {"source.ip": "192.0.2.10"}}, source=True
    )["hits"]["hits"]
    assert [hit["_id"] for hit in found] == [doc_id]
    hit = found[0]
    assert hit["_source"]["network"]["bytes"] == "36893488147419103232"
    assert {"network.bytes", "source.bytes", "panw.panos.sequence_number"} <= set(
        hit.get("_ignored", ())
    )
    # A regular value of the same fields is still indexed as a number.
    assert es_client.count(index=prefix, query={"term": {"destination.bytes": 4096}})["count"] == 1
