"""The Sigma rules' Lucene queries on the real Elasticsearch: a labelled set of log lines goes
through the project's own path (parse, diagnose with the session's other lines, ECS), is indexed
with the project's index template and BulkWriter, and each rule must find exactly the
documents of its family.

Labels come from the test data, not from the classifier: a case of tests/golden/diagnosis/ has
its documented cause in ``<case>.expected.json``; deploy/demo/sample-traffic.log names it in the
comment above each session (``# <case>: <cause>`` or ``not a failure``). A cause's family is
its catalogue category (schemas/causes.toml) as the families are defined in
tests/unit/test_sigma.py."""

from __future__ import annotations

import importlib.util
import re
import tomllib
from pathlib import Path

import orjson
import pytest
from prometheus_client import CollectorRegistry
from sigma.backends.elasticsearch import LuceneBackend

from pipeline.chain import Chain, ChainConfig, Message
from pipeline.metrics import build_metrics
from pipeline.panos import iter_events
from pipeline.resources import DEPLOY, SCHEMAS
from pipeline.sinks import es_templates
from pipeline.sinks.elasticsearch import BulkWriter, make_client

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
DIAGNOSIS = ROOT / "tests" / "golden" / "diagnosis"
DEMO = DEPLOY / "demo" / "sample-traffic.log"
SIGMA = DEPLOY / "sigma"
FAMILY_OF_CATEGORY = {
    "client-trust": "decryptscope_client_trust",
    "server-certificate": "decryptscope_server_certificate",
    "unsupported-parameter": "decryptscope_unsupported_parameters",
    "client-authentication": "decryptscope_unsupported_parameters",
    "inbound-inspection": "decryptscope_inbound_inspection",
    "resources": "decryptscope_resources",
}
_DEMO_LABEL = re.compile(r"# ([a-z0-9-]+): (.+)")


_NO_LABEL = "(no label)"


def sessions() -> list[tuple[str, str | None, list[str]]]:
    """(name, documented cause or None, lines) of each session of the labelled set; lines
    under a comment that names no case get the cause ``_NO_LABEL``."""
    out = []
    for path in sorted(DIAGNOSIS.glob("*.log")):
        cause = orjson.loads(path.with_suffix(".expected.json").read_bytes())["cause"]
        out.append((path.stem, cause, path.read_text(encoding="utf-8").splitlines()))
    name, cause = "demo", _NO_LABEL
    lines: list[str] = []
    for line in [*DEMO.read_text(encoding="utf-8").splitlines(), "# end"]:
        if not line.startswith("#"):
            lines.append(line)
            continue
        if lines:
            out.append((name, cause, lines))
        found = _DEMO_LABEL.fullmatch(line)
        name, cause = f"demo:{line}", _NO_LABEL
        if found:
            name = f"demo:{found.group(1)}"
            cause = None if found.group(2) == "not a failure" else found.group(2)
        lines = []
    return out


def labelled_documents() -> tuple[dict[str, dict], dict[str, str | None], int]:
    """ECS documents by _id, their family (None: no rule should match), lines not parsed."""
    categories = {
        c["id"]: c["category"]
        for c in tomllib.loads((SCHEMAS / "causes.toml").read_text())["causes"]
    }
    docs: dict[str, dict] = {}
    family: dict[str, str | None] = {}
    unparsed = 0
    for name, cause, lines in sessions():
        # one session at a time through the chain the worker runs (its lines joined)
        chain = Chain(ChainConfig(event_time=True))
        messages = [Message(text) for _, text in iter_events(lines)]
        result = chain.run(messages, {}, 0.0)
        unparsed += len(result.dead_letters)
        if cause == _NO_LABEL:
            assert not result.documents, f"{name}: log lines without a documented cause"
            continue
        assert result.documents, name
        expected = FAMILY_OF_CATEGORY.get(categories[cause]) if cause else None
        for document in result.documents:
            doc_id = document.doc_id
            # The demo repeats the golden lines: the same _id must carry the same label.
            assert family.setdefault(doc_id, expected) == expected, (name, doc_id)
            docs[doc_id] = orjson.loads(document.source)
    return docs, family, unparsed


def rule_queries() -> dict[str, tuple[dict, str]]:
    """Family rule name -> (the Lucene backend's search body, the shipped .lucene query)."""
    spec = importlib.util.spec_from_file_location("sigma_convert", SIGMA / "convert.py")
    convert = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(convert)
    out = {}
    for path in convert.rule_files():
        if convert.is_correlation(path):
            continue
        rules = convert.load([path])
        (body,) = LuceneBackend(convert.processing_pipeline()).convert(rules, "dsl_lucene")
        shipped = (SIGMA / "elasticsearch" / f"{path.stem}.lucene").read_text().strip()
        out[rules[0].name] = (body, shipped)
    return out


@pytest.fixture
def prefix(run_prefix, es_client):
    name = f"{run_prefix}-sigma"
    es_templates.setup_elasticsearch(es_client, name)
    yield name
    es_client.indices.delete(index=f"{name}-*", ignore_unavailable=True)
    es_client.indices.delete_index_template(name=name)


async def test_each_rule_matches_exactly_its_family_on_indexed_events(settings, es_client, prefix):
    docs, family, unparsed = labelled_documents()
    assert unparsed == 2  # the demo's two lines that are not PAN-OS logs
    writer = BulkWriter(
        make_client(settings),
        settings,
        metrics=build_metrics(CollectorRegistry()),
        index_prefix=prefix,
    )
    try:
        assert await writer.write(list(docs.items())) == []
    finally:
        await writer.client.close()
    es_client.indices.refresh(index=prefix)
    assert es_client.count(index=prefix)["count"] == len(docs)

    queries = rule_queries()
    assert set(queries) == set(FAMILY_OF_CATEGORY.values())
    matched: dict[str, set[str]] = {}
    for rule, (body, shipped) in queries.items():
        expected = {doc_id for doc_id, f in family.items() if f == rule}
        assert expected, f"no labelled case for {rule}"
        hits = es_client.search(index=prefix, size=1000, **body)["hits"]["hits"]
        matched[rule] = {h["_id"] for h in hits}
        assert matched[rule] == expected, rule
        plain = es_client.search(
            index=prefix, size=1000, query={"query_string": {"query": shipped}}
        )["hits"]["hits"]
        assert {h["_id"] for h in plain} == expected, f"{rule}: the shipped .lucene query"
    unlabelled = {doc_id for doc_id, f in family.items() if f is None}
    assert unlabelled and not unlabelled & set().union(*matched.values())
    counts = {rule: len(ids) for rule, ids in sorted(matched.items())}
    print(f"\nlabelled documents: {len(docs)}, matches per rule: {counts}, none: {len(unlabelled)}")
