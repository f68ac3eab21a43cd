"""The Grafana dashboards and provisioning: generated output up to date, accepted by the
foundation SDK's models, type-checked against @grafana/schema, PromQL that promtool parses."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import Dashboard

from pipeline.resources import DEPLOY, ROOT

GRAFANA = ROOT / "grafana"

DASHBOARDS = sorted((GRAFANA / "dashboards").glob("*.json"))
NODE_MODULES = GRAFANA / "node_modules"


def load_generator():
    spec = importlib.util.spec_from_file_location("grafana_generate", GRAFANA / "generate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def panels(dashboard: dict) -> list[dict]:
    return [p for p in dashboard["panels"] if p.get("type") != "row"]


def promql(dashboard: dict) -> list[str]:
    return [
        t["expr"]
        for p in panels(dashboard)
        for t in p.get("targets", [])
        if t.get("datasource", {}).get("type") == "prometheus"
    ]


def test_committed_dashboards_match_the_generator():
    gen = load_generator()
    assert {p.name for p in DASHBOARDS} == set(gen.DASHBOARDS)
    for name, make in gen.DASHBOARDS.items():
        text = gen.render(make())
        assert (GRAFANA / "dashboards" / name).read_text() == text, "run grafana/generate.py"
        ts = GRAFANA / "typecheck" / name.replace(".json", ".ts")
        assert ts.read_text() == gen.typescript(name, text)


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_the_sdk_models_keep_every_key(path):
    def paths(node, prefix=""):
        out = set()
        if isinstance(node, dict):
            for key, value in node.items():
                out |= {f"{prefix}.{key}"} | paths(value, f"{prefix}.{key}")
        elif isinstance(node, list):
            for i, value in enumerate(node):
                out |= paths(value, f"{prefix}[{i}]")
        return out

    original = json.loads(path.read_text())
    again = json.loads(json.dumps(Dashboard.from_json(original), cls=JSONEncoder))
    # The SDK's AnnotationQuery models the keys every data source shares; an Elasticsearch
    # annotation's own keys (its query, time, text and tags fields) are type-checked by the
    # TypeScript copy instead (ElasticsearchAnnotation).
    own = {"target.query", "target.refId", "timeField", "textField", "tagsField"}
    es_annotations = {
        f".annotations.list[{i}].{key}"
        for i, annotation in enumerate(original.get("annotations", {}).get("list", []))
        if annotation["datasource"]["type"] == "elasticsearch"
        for key in own
    }
    assert paths(original) - paths(again) <= es_annotations
    assert paths(original) - paths(again) - es_annotations == set()


def test_the_three_dashboards_cover_failures_drilldown_and_health():
    by_uid = {json.loads(p.read_text())["uid"]: json.loads(p.read_text()) for p in DASHBOARDS}
    failures = by_uid["decryptscope-failures"]
    exprs = " ".join(promql(failures))
    assert "cause:decryptscope_decryption_failures:rate1m" in exprs
    assert "ratio_rate5m" in exprs and "mode:" in exprs and "ALERTS" in exprs
    assert any("remediation" in json.dumps(p) for p in panels(failures))
    drill = json.dumps(by_uid["decryptscope-drilldown"])
    for field in ("decryptscope.cause", "tls.client.server_name", "rule.name", "source.ip"):
        assert field in drill
    health = " ".join(promql(by_uid["decryptscope-health"]))
    for metric in ("consumer_lag", "dead_letters", "es_bulk_duration", "events_total"):
        assert metric in health


def test_the_failure_dashboards_annotate_change_points_from_elasticsearch():
    by_uid = {json.loads(p.read_text())["uid"]: json.loads(p.read_text()) for p in DASHBOARDS}
    for uid in ("decryptscope-failures", "decryptscope-drilldown"):
        [annotation] = by_uid[uid]["annotations"]["list"]
        assert annotation["datasource"] == {
            "type": "elasticsearch",
            "uid": "decryptscope-elasticsearch",
        }
        # the change documents' own dataset and fields (schemas/ecs/event.schema.json)
        assert annotation["target"]["query"] == 'event.dataset:"decryptscope.change"'
        assert annotation["timeField"] == "@timestamp"
        assert annotation["textField"] == "message"
        assert annotation["tagsField"] == "decryptscope.change.kind"
    health = by_uid["decryptscope-health"]
    assert not health.get("annotations", {}).get("list")


def test_coverage_and_certificate_panels():
    failures = json.loads((GRAFANA / "dashboards" / "decryption-failures.json").read_text())
    exprs = " ".join(promql(failures))
    assert "decryptscope_tls_sessions_decrypted:ratio_rate1h" in exprs
    assert "role_days_left:decryptscope_certificates:count" in exprs
    es_targets = [
        t
        for p in panels(failures)
        for t in p.get("targets", [])
        if t.get("datasource", {}).get("type") == "elasticsearch"
        and t.get("query") == "decryptscope.decrypted:false"
    ]
    fields = {t["bucketAggs"][0]["field"] for t in es_targets}
    assert fields == {"destination.ip", "destination.domain"}
    for target in es_targets:
        assert {m["type"] for m in target["metrics"]} == {"count", "sum"}
        assert next(m for m in target["metrics"] if m["type"] == "sum")["field"] == "network.bytes"


def test_datasource_uids_match_provisioning():
    provisioned = yaml.safe_load(
        (GRAFANA / "provisioning" / "datasources" / "decryptscope.yml").read_text()
    )
    uids = {d["uid"]: d["type"] for d in provisioned["datasources"]}
    assert uids["decryptscope-elasticsearch"] == "elasticsearch"
    es = next(d for d in provisioned["datasources"] if d["type"] == "elasticsearch")
    assert es["jsonData"]["index"] == "decryptscope-events"
    for path in DASHBOARDS:
        for panel in panels(json.loads(path.read_text())):
            refs = [panel["datasource"]] + [t["datasource"] for t in panel.get("targets", [])]
            for ref in refs:
                assert uids.get(ref["uid"]) == ref["type"], (path.name, panel["title"])


def test_dashboard_provider_path_is_where_compose_mounts_the_dashboards():
    provider = yaml.safe_load(
        (GRAFANA / "provisioning" / "dashboards" / "decryptscope.yml").read_text()
    )["providers"][0]
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    mounts = compose["services"]["grafana"]["volumes"]
    assert f"../grafana/dashboards:{provider['options']['path']}:ro" in mounts


def test_promtool_parses_every_panel_query(tmp_path):
    exprs = sorted({e for path in DASHBOARDS for e in promql(json.loads(path.read_text()))})
    records = [{"record": f"panel:q{i}", "expr": e} for i, e in enumerate(exprs)]
    rules = {"groups": [{"name": "panels", "rules": records}]}
    path = tmp_path / "panels.yml"
    path.write_text(yaml.safe_dump(rules))
    promtool = shutil.which("promtool")
    assert promtool, "promtool is not installed (apt-get install prometheus)"
    result = subprocess.run(
        [promtool, "check", "rules", str(path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def tsc(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    assert NODE_MODULES.is_dir(), "run `npm ci --prefix grafana` first"
    binary = NODE_MODULES / ".bin" / "tsc"
    return subprocess.run(
        [str(binary), *args], cwd=cwd, capture_output=True, text=True, timeout=300, check=False
    )


def test_dashboards_type_check_against_grafana_schema():
    result = tsc("--noEmit", "--strict", "-p", "tsconfig.json", cwd=GRAFANA)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_type_check_catches_an_unknown_key(tmp_path):
    gen = load_generator()
    dashboard = json.loads(DASHBOARDS[0].read_text())
    dashboard["panels"][0]["tittle"] = "typo"
    (tmp_path / "node_modules").symlink_to(NODE_MODULES)
    (tmp_path / "bad.ts").write_text(gen.typescript("bad.json", json.dumps(dashboard)))
    config = json.loads((GRAFANA / "tsconfig.json").read_text())
    config["include"] = ["bad.ts"]
    (tmp_path / "tsconfig.json").write_text(json.dumps(config))
    result = tsc("--noEmit", "--strict", "-p", "tsconfig.json", cwd=tmp_path)
    assert result.returncode != 0
    assert "tittle" in result.stdout


def test_the_failures_dashboard_lists_exclusion_candidates_from_elasticsearch():
    failures = next(
        json.loads(p.read_text()) for p in DASHBOARDS if p.name == "decryption-failures.json"
    )
    [panel] = [p for p in panels(failures) if p["title"].startswith("Exclusion candidates")]
    [target] = panel["targets"]
    assert target["datasource"]["type"] == "elasticsearch"
    assert [b["field"] for b in target["bucketAggs"]] == [
        "tls.client.server_name",
        "decryptscope.cause",
    ]
    assert {m["type"] for m in target["metrics"]} == {"count", "cardinality"}
    # every cause the recommendations data routes to an exclusion, and none it never excludes
    data = tomllib.loads((ROOT / "schemas" / "recommendations.toml").read_text())
    routed = {r["cause"] for r in data["routes"] if "exclusion" in (r["kind"], r.get("otherwise"))}
    never = {n["cause"] for n in data["never_exclude"] if "cause" in n}
    for cause in routed:
        assert f'"{cause}"' in target["query"]
    for cause in never:
        assert f'"{cause}"' not in target["query"]
    assert "decryptscope.mode:forward-proxy" in target["query"]
