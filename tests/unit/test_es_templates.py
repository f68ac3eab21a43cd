"""Index templates as data (pipeline.sinks.es_templates), without a cluster."""

from __future__ import annotations

from datetime import UTC, datetime

from pipeline.alerting import build_alert, change_alert
from pipeline.changes import ChangePoint
from pipeline.sinks import es_templates
from pipeline.sinks.elasticsearch import bulk_body, index_for


def test_index_template_is_strict_with_alias_and_prefix() -> None:
    t = es_templates.desired_templates("run1-events")
    body = t.index_template
    assert body["index_patterns"] == ["run1-events-*"]
    assert body["template"]["aliases"] == {"run1-events": {}}
    assert body["template"]["mappings"]["dynamic"] == "strict"
    assert set(body["composed_of"]) == set(t.components)
    assert all(name.startswith("run1-events-") for name in t.components)
    tls = t.components["run1-events-tls"]["template"]["mappings"]["properties"]["tls"]
    assert "server" in tls["properties"]


def test_panw_component_is_dynamic_under_panw_panos_only() -> None:
    comp = es_templates.panw_component()
    panos = comp["template"]["mappings"]["properties"]["panw"]["properties"]["panos"]
    assert panos["dynamic"] is True
    assert "dynamic" not in comp["template"]["mappings"]


def test_fallback_retypes_missing_field_types() -> None:
    body = {
        "template": {
            "mappings": {
                "properties": {
                    "a": {"type": "match_only_text"},
                    "b": {"properties": {"c": {"type": "scaled_float", "scaling_factor": 10}}},
                }
            }
        }
    }
    fallbacks = es_templates.desired_templates("x").fallbacks
    out = es_templates.apply_fallback(body, "scaled_float", fallbacks["scaled_float"])
    assert out["template"]["mappings"]["properties"]["b"]["properties"]["c"] == {"type": "float"}
    assert body["template"]["mappings"]["properties"]["b"]["properties"]["c"]["scaling_factor"]


def test_daily_index_from_timestamp_in_utc() -> None:
    doc = {"@timestamp": "2026-01-01T00:30:00+02:00"}
    assert index_for(doc, "p") == "p-2025.12.31"
    body = bulk_body([("id1", doc)], "p").split(b"\n")
    assert body[0] == b'{"index":{"_index":"p-2025.12.31","_id":"id1"}}'


def test_expired_indices_by_whole_days() -> None:
    names = {
        "p-2026.01.01": datetime(2026, 1, 1, tzinfo=UTC),
        "p-2026.01.08": datetime(2026, 1, 8, tzinfo=UTC),
        "p-2026.01.10": datetime(2026, 1, 10, tzinfo=UTC),
    }
    now = datetime(2026, 1, 10, 12, tzinfo=UTC)
    assert es_templates.expired_indices(names, 2, now) == ["p-2026.01.01"]
    assert es_templates.expired_indices(names, 0, now) == ["p-2026.01.01", "p-2026.01.08"]


def _mapped_paths(properties: dict, parent: str = "") -> dict[str, str]:
    out = {}
    for name, spec in properties.items():
        path = f"{parent}{name}"
        if "properties" in spec:
            out.update(_mapped_paths(spec["properties"], f"{path}."))
        else:
            out[path] = spec["type"]
    return out


def _document_paths(doc: dict, parent: str = "") -> set[str]:
    out = set()
    for name, value in doc.items():
        path = f"{parent}{name}"
        items = value if isinstance(value, list) else [value]
        nested = [item for item in items if isinstance(item, dict)]
        if nested:
            for item in nested:
                out |= _document_paths(item, f"{path}.")
        else:
            out.add(path)
    return out


def test_alerts_template_maps_every_field_of_an_alert() -> None:
    alert = build_alert(
        kind="spike",
        cause="unsupported-tls-version",
        server="www.example.com",
        category="unsupported-parameter",
        mode="forward-proxy",
        remediation="Set Max Version to Max.",
        window_start=1_790_000_000,
        window_s=60,
        observed=40,
        expected=2.5,
        deviation=1.2,
        top_servers=[{"value": "www.example.com", "count": 40}],
        top_rules=[{"value": "outbound-web", "count": 40}],
        top_sources=[{"value": "192.0.2.10", "count": 40}],
        samples=["012801096514:DECRYPTION:7451000000000001017"],
    )
    regression = build_alert(
        kind="regression",
        cause="inbound-proxy-handshake-failure",
        server="",
        category="inbound-inspection",
        mode="inbound-inspection",
        remediation="Check the cipher suites.",
        window_start=1_790_000_000,
        window_s=60,
        observed=12,
        expected=0.0,
        deviation=0.0,
        top_servers=[{"value": "198.51.100.80", "count": 12}],
        top_rules=[{"value": "inbound-portal", "count": 12}],
        top_sources=[{"value": "203.0.113.51", "count": 12}],
        samples=["012801096530:DECRYPTION:7453000000000004101"],
        firewall="012801096530",
        change={
            "id": "012801096530:CHANGE:version:2562:1795170600",
            "kind": "software",
            "firewall": "012801096530",
            "name": "fw-dmz-01",
            "time": "2026-11-20T09:30:00+00:00",
            "summary": "PAN-OS 10.1 -> 10.2",
        },
        comparison={
            "verdict": "appeared",
            "before": {"failures": 0, "windows": 30},
            "after": {"failures": 12, "windows": 4},
        },
    )
    expired = change_alert(
        ChangePoint(
            id="012801096530:SYSTEM:7455000000000004009:change",
            kind="certificate-expired",
            category="configuration",
            firewall="012801096530",
            name="fw-dmz-01",
            time=datetime(2026, 11, 25, 12, tzinfo=UTC),
            summary="Certificate portal-inbound has expired",
            rule="cert-expiry",
            evidence="doc",
            object="portal-inbound",
            alert="critical",
            remediation="Renew it.",
        )
    )
    body = es_templates.alerts_template("run1-alerts")
    assert body["index_patterns"] == ["run1-alerts-*"]
    assert body["template"]["aliases"] == {"run1-alerts": {}}
    assert body["template"]["settings"]["index"]["number_of_replicas"] == "0"
    mapped = _mapped_paths(body["template"]["mappings"]["properties"])
    documents = (alert, regression, expired)
    assert set().union(*map(_document_paths, documents)) == set(mapped)
    for path in ("firewall", "change.id", "change.kind", "verdict"):
        assert mapped[path] == "keyword", path
    assert mapped["change.time"] == "date"
    # Exact values for term queries and aggregations: never analysed text.
    for path in ("id", "kind", "severity", "cause", "category", "mode", "server"):
        assert mapped[path] == "keyword", path
    for path in ("top_servers.value", "top_rules.value", "sample_event_ids"):
        assert mapped[path] == "keyword", path
    assert mapped["@timestamp"] == mapped["window.start"] == "date"


def test_alerts_template_outranks_an_events_template_that_covers_it() -> None:
    events = es_templates.desired_templates("decryptscope").index_template
    alerts = es_templates.alerts_template("decryptscope-alerts")
    assert alerts["priority"] > events["priority"]
