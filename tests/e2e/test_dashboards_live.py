"""Every panel query of the Grafana dashboards returns data from the live stack after a replay:
PromQL from the stack's Prometheus, Elasticsearch panels translated into the search and
aggregations Grafana would send. Grafana itself cannot run here; this is the data half."""

from __future__ import annotations

import json
import urllib.parse
from pathlib import Path
from typing import Any

import pytest
from elasticsearch import Elasticsearch
from test_alert_e2e import (  # the same real pipeline as the alert test
    failure_lines,
    http_json,
    pipeline_env,  # noqa: F401  (fixture)
    replay,
    running_pipeline,  # noqa: F401  (fixture)
    spike_rate,
    wait_for,
)

from pipeline.resources import ROOT
from pipeline.settings import Settings

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

DASHBOARDS = sorted((ROOT / "grafana" / "dashboards").glob("*.json"))
OTHER_SAMPLES = [
    ROOT / "tests" / "golden" / "decryption-11.1-tls13-success.log",
    ROOT / "tests" / "golden" / "decryption-ipv6.log",
    # a cause only an exclusion fixes, for the exclusion-candidates panel
    ROOT / "tests" / "golden" / "diagnosis" / "certificate-pinning.log",
    # coverage panels: a decrypted session's TRAFFIC end, a No Decrypt handshake
    ROOT / "tests" / "golden" / "diagnosis" / "none-tcp-fin.log",
    ROOT / "tests" / "golden" / "diagnosis" / "none-no-decrypt.log",
]


def targets(datasource: str) -> list[tuple[str, dict]]:
    out = []
    for path in DASHBOARDS:
        for panel in json.loads(path.read_text())["panels"]:
            for target in panel.get("targets", []):
                if target["datasource"]["type"] == datasource:
                    out.append((f"{path.stem}: {panel['title']}", target))
    return out


def prom_has_data(prometheus: str, expr: str) -> bool:
    query = urllib.parse.urlencode({"query": expr})
    body = http_json(f"{prometheus}/api/v1/query?{query}")
    return any(value["value"][1] not in {"NaN", "+Inf", "-Inf"} for value in body["data"]["result"])


def es_search(target: dict[str, Any], cause: str = "*") -> dict[str, Any]:
    """The search Grafana's Elasticsearch datasource sends for ``target`` (last 24 hours)."""
    query = target["query"].replace("$cause", cause)
    body: dict[str, Any] = {
        "query": {
            "bool": {
                "filter": [
                    {"query_string": {"query": query, "analyze_wildcard": True}},
                    {"range": {target["timeField"]: {"gte": "now-24h", "lte": "now"}}},
                ]
            }
        }
    }
    metric = target["metrics"][0]
    if metric["type"] == "raw_data":
        body["size"] = int(metric.get("settings", {}).get("size", 500))
        return body
    body["size"] = 0
    aggs: dict[str, Any] = {}
    inner = aggs
    for bucket in target["bucketAggs"]:
        if bucket["type"] == "terms":
            settings = bucket.get("settings", {})
            agg = {"terms": {"field": bucket["field"], "size": int(settings.get("size", 10))}}
        elif bucket["type"] == "date_histogram":
            agg = {"date_histogram": {"field": bucket["field"], "fixed_interval": "1m"}}
        else:
            raise AssertionError(f"no translation for bucket aggregation {bucket['type']}")
        inner[bucket["id"]] = agg
        inner = agg.setdefault("aggs", {})
    body["aggs"] = aggs
    return body


def es_has_data(client: Elasticsearch, index: str, target: dict[str, Any]) -> bool:
    body = es_search(target)
    result = client.search(index=index, body=body)
    if result["hits"]["total"]["value"] == 0:
        return False
    if body["size"]:
        return bool(result["hits"]["hits"])
    first = target["bucketAggs"][0]["id"]
    return bool(result["aggregations"][first]["buckets"])


def test_every_panel_query_returns_data(
    running_pipeline: dict[str, str],  # noqa: F811
    tmp_path: Path,
    settings: Settings,
):
    env = running_pipeline
    other = "".join(
        line + "\n"
        for path in OTHER_SAMPLES
        for line in path.read_text().splitlines()
        if line and not line.startswith("#")
    )
    replay(env, other + "not a PAN-OS line\n", 50, tmp_path / "other.log")
    replay(env, failure_lines(40, 0), 2, tmp_path / "baseline.log")
    rate = spike_rate(env["E2E_PROMETHEUS"])
    replay(env, failure_lines(rate * 60, 5000), rate, tmp_path / "spike.log")

    client = Elasticsearch(settings.es_url)
    index = env["DECRYPTSCOPE_INDEX_PREFIX"]
    es_targets = targets("elasticsearch")
    assert len(es_targets) >= 5
    es_pending = dict(es_targets)
    prom = targets("prometheus")
    assert len(prom) >= 15
    prom_pending = {f"{name} [{t['refId']}]": t["expr"] for name, t in prom}

    def resolve() -> bool:
        for key, expr in list(prom_pending.items()):
            if prom_has_data(env["E2E_PROMETHEUS"], expr):
                del prom_pending[key]
        for key, target in list(es_pending.items()):
            if es_has_data(client, index, target):
                del es_pending[key]
        return not prom_pending and not es_pending

    try:
        wait_for("every panel to have data", resolve, 180, 5)
    except AssertionError:
        pytest.fail(
            f"Prometheus panels without data: {json.dumps(prom_pending, indent=1)}\n"
            f"Elasticsearch panels without data: {sorted(es_pending)}"
        )
    finally:
        client.close()
