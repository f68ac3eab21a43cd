"""``decryptscope recommend --from-es`` on the real Elasticsearch: log files go through the chain
(as ``decryptscope recommend FILE`` reads them), their documents are indexed with the project's
index template and BulkWriter under a prefix of the test run, and the recommendations read back
from the index must equal those of the files, byte for byte in every output format. The
failures dashboard's exclusion-candidates panel finds the demo's candidates there."""

from __future__ import annotations

import dataclasses
import json
from datetime import timedelta
from pathlib import Path

import orjson
import pytest
from prometheus_client import CollectorRegistry

from pipeline.commands import offline, recommend
from pipeline.metrics import build_metrics
from pipeline.resources import DEPLOY
from pipeline.sinks import es_templates
from pipeline.sinks.elasticsearch import BulkWriter, make_client

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = ROOT / "tests" / "golden" / "recommend"
# The demo traffic holds every kind and a destination on each side of the exclusion gate; the
# pinning case adds decrypted sessions (tls.established) the gate must find in the index too.
SETS = {
    "demo": [DEPLOY / "demo" / "sample-traffic.log"],
    "pinning": [GOLDEN / "exclusion-pinning-with-success.log"],
    "mixed": [GOLDEN / "exclusion-wildcard.log", GOLDEN / "forward-trust-ca.log"],
}


def documents(paths: list[Path], settings) -> dict[str, dict]:
    """Each document of the files in its latest version, by id: what the worker indexes."""
    chain = offline.chain_for(settings)
    out: dict[str, dict] = {}
    for batch in offline.run_files([str(p) for p in paths], chain, offline.sessions_for(settings)):
        for doc in batch.result.documents:
            out[doc.doc_id] = orjson.loads(doc.source)
    return out


@pytest.fixture
def index(run_prefix, es_client):
    name = f"{run_prefix}-rec"
    es_templates.setup_elasticsearch(es_client, name)
    yield name
    es_client.indices.delete(index=f"{name}-*", ignore_unavailable=True)
    es_client.indices.delete_index_template(name=name)


async def index_documents(settings, es_client, index: str, docs: dict) -> None:
    """Bulk-index ``docs`` (id -> document) under ``index`` with the pipeline's own writer,
    every one accepted, and make them searchable."""
    writer = BulkWriter(
        make_client(settings),
        settings,
        metrics=build_metrics(CollectorRegistry()),
        index_prefix=index,
    )
    try:
        assert await writer.write(list(docs.items())) == []
    finally:
        await writer.client.close()
    es_client.indices.refresh(index=f"{index}-*")


@pytest.mark.parametrize("name", sorted(SETS))
async def test_from_es_gives_what_the_files_give(settings, es_client, index, name):
    paths = SETS[name]
    docs = documents(paths, settings)
    await index_documents(settings, es_client, index, docs)
    assert es_client.count(index=f"{index}-*")["count"] == len(docs)

    own = dataclasses.replace(settings, index_prefix=f"{index}-*")
    from_files = recommend.from_files([str(p) for p in paths], own)
    from_es = recommend.from_es(own, None)
    assert from_files["recommendations"] or from_files["held"], "the set must say something"
    assert from_files["evidence"]["failures"] > 0
    assert from_es == from_files
    for fmt in ("text", "json", "set", "xml"):
        assert recommend.render(from_es, fmt) == recommend.render(from_files, fmt), fmt

    # the window: the files' events are days old, so the last hour holds none of them
    assert recommend.from_es(own, timedelta(hours=1))["evidence"]["failures"] == 0


def panel_search(target: dict) -> dict:
    """The search Grafana's Elasticsearch datasource sends for a table of nested terms buckets
    with count and unique-count metrics (no time filter: the files' events are days old)."""
    aggs: dict = {}
    inner = aggs
    for bucket in target["bucketAggs"]:
        size = int(bucket["settings"]["size"])
        inner[bucket["id"]] = {"terms": {"field": bucket["field"], "size": size}}
        inner = inner[bucket["id"]].setdefault("aggs", {})
    for metric in target["metrics"]:
        if metric["type"] == "cardinality":
            inner[metric["id"]] = {"cardinality": {"field": metric["field"]}}
    query = {"query_string": {"query": target["query"], "analyze_wildcard": True}}
    return {"size": 0, "query": query, "aggs": aggs}


async def test_the_exclusion_candidates_panel_on_the_indexed_demo(settings, es_client, index):
    docs = documents(SETS["demo"], settings)
    await index_documents(settings, es_client, index, docs)
    dashboard = json.loads(
        (ROOT / "grafana" / "dashboards" / "decryption-failures.json").read_text()
    )
    [panel] = [p for p in dashboard["panels"] if p["title"].startswith("Exclusion candidates")]
    [target] = panel["targets"]
    result = es_client.search(index=f"{index}-*", body=panel_search(target))
    rows = {}
    for host in result["aggregations"]["1"]["buckets"]:
        for cause in host["2"]["buckets"]:
            rows[(host["key"], cause["key"])] = (cause["doc_count"], cause["u"]["value"])
    # the demo traffic's own header: 20 failures from 3 clients to payments.example.com, 19
    # from 3 to legacy.example.net
    assert rows[("payments.example.com", "client-cert-auth-required")] == (20, 3)
    assert rows[("legacy.example.net", "unsupported-feature")] == (19, 3)
    assert not any(cause.startswith("server-cert") for _, cause in rows)
