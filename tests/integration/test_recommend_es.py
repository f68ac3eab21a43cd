"""``decryptscope recommend --from-es`` on the real Elasticsearch: log files go through the chain
(as ``decryptscope recommend FILE`` reads them), their documents are indexed with the project's
index template and BulkWriter under a prefix of the test run, and the recommendations read back
from the index must equal those of the files, byte for byte in every output format."""

from __future__ import annotations

import dataclasses
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


@pytest.mark.parametrize("name", sorted(SETS))
async def test_from_es_gives_what_the_files_give(settings, es_client, index, name):
    paths = SETS[name]
    docs = documents(paths, settings)
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
