"""Generate the Grafana dashboards in grafana/dashboards/ with grafana-foundation-sdk builders.

Run ``python grafana/generate.py`` after changing a panel and commit the JSON it writes; the
tests compare the committed files with a fresh generation, type-check them against
``@grafana/schema`` and run every query against the live Prometheus and Elasticsearch.

Prometheus panels use the recording rules of deploy/prometheus/rules/; Elasticsearch panels
read the ``decryptscope-events`` alias. Datasource uids match grafana/provisioning/datasources/.
The causes that can lead to an exclusion from decryption come from ``pipeline.recommend`` (run
from the top of the checkout, or with the project installed).

The failure dashboards annotate every change point (the documents of ``event.dataset``
decryptscope.change, ``pipeline/changes.py``) with an Elasticsearch annotation query. Its
query, time, text and tags fields are the Elasticsearch data source's own keys, which the
foundation SDK's AnnotationQuery does not model: they are added to the rendered JSON, and the
TypeScript copy types them with an interface of those keys (``ElasticsearchAnnotation``).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.builders import elasticsearch as es
from grafana_foundation_sdk.builders import prometheus as prom
from grafana_foundation_sdk.builders import stat, table, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import (
    DataSourceRef,
    DataTransformerConfig,
    GridPos,
)

from pipeline.recommend import exclusion_causes

HERE = Path(__file__).resolve().parent
OUT = HERE / "dashboards"
# Each dashboard again as a TypeScript object literal typed as @grafana/schema's Dashboard:
# a literal gets excess-property checks that an imported .json file does not.
TYPECHECK = HERE / "typecheck"
PROMETHEUS = DataSourceRef(type_val="prometheus", uid="decryptscope-prometheus")
ELASTICSEARCH = DataSourceRef(type_val="elasticsearch", uid="decryptscope-elasticsearch")
FAILURES = "decryptscope.failure:true"
CAUSE_FILTER = f"{FAILURES} AND decryptscope.cause:$cause"
CHANGES = 'event.dataset:"decryptscope.change"'
UNDECRYPTED = "decryptscope.decrypted:false"
# Change points as annotations: the Elasticsearch data source's annotation keys (Grafana's
# ElasticsearchAnnotationQuery: the Lucene query in target.query, and the fields that give an
# annotation its time, text and tags).
CHANGE_ANNOTATION = {
    "datasource": {"type": "elasticsearch", "uid": "decryptscope-elasticsearch"},
    "enable": True,
    "hide": False,
    "iconColor": "orange",
    "name": "Change points",
    "target": {"refId": "Anno", "query": CHANGES},
    "timeField": "@timestamp",
    "textField": "message",
    "tagsField": "decryptscope.change.kind",
}
# The dashboards (by uid) that show the change points.
ANNOTATED = frozenset({"decryptscope-failures", "decryptscope-drilldown"})
TS_ANNOTATIONS = "__annotations__"


def prom_query(expr: str, legend: str = "", ref: str = "A", *, instant: bool = False) -> Any:
    query = prom.Dataquery().expr(expr).ref_id(ref).datasource(PROMETHEUS)
    if legend:
        query = query.legend_format(legend)
    if instant:
        query = query.instant().format("table")
    return query


def es_terms(field: str, size: int = 10, ref_id: str = "1") -> Any:
    settings = es.TermsSettings().size(str(size)).order("desc").order_by("_count")
    return es.Terms().id(ref_id).field(field).settings(settings)


def es_query(query: str, buckets: list[Any] | None = None, ref: str = "A") -> Any:
    q = (
        es.Dataquery()
        .ref_id(ref)
        .datasource(ELASTICSEARCH)
        .query(query)
        .time_field("@timestamp")
        .metrics([es.Count().id("c")])
    )
    return q.bucket_aggs(buckets or [])


def es_raw(query: str, size: int, ref: str = "A") -> Any:
    settings = es.ElasticsearchRawDataSettings().size(str(size))
    return (
        es.Dataquery()
        .ref_id(ref)
        .datasource(ELASTICSEARCH)
        .query(query)
        .time_field("@timestamp")
        .metrics([es.RawData().id("r").settings(settings)])
        .bucket_aggs([])
    )


def exclusion_candidates() -> Any:
    """Failures whose cause can lead to an exclusion, by server name and cause, with failures
    and distinct clients; ``decryptscope recommend`` applies the gates."""
    causes = " OR ".join(f'"{cause}"' for cause in exclusion_causes())
    query = (
        es.Dataquery()
        .ref_id("A")
        .datasource(ELASTICSEARCH)
        .query(f"{FAILURES} AND decryptscope.mode:forward-proxy AND decryptscope.cause:({causes})")
        .time_field("@timestamp")
        .metrics([es.Count().id("c"), es.UniqueCount().id("u").field("source.ip")])
        .bucket_aggs(
            [es_terms("tls.client.server_name", 20, "1"), es_terms("decryptscope.cause", 10, "2")]
        )
    )
    return (
        table.Panel()
        .title("Exclusion candidates: destinations by cause")
        .description(
            "Forward-proxy failures whose cause only an exclusion from decryption fixes (pinning, "
            "client authentication, unsupported features, server-only cipher, curve and version "
            "limits), by server name: failures (Count) and distinct clients (Unique Count of "
            "source.ip). `decryptscope recommend` applies the gates (failures, clients, time "
            "span, no decrypted session) and writes the configuration."
        )
        .datasource(ELASTICSEARCH)
        .with_target(query)
    )


def es_undecrypted(field: str, ref: str = "A") -> Any:
    """Undecrypted TLS sessions by ``field``: sessions (count) and bytes (sum)."""
    return (
        es.Dataquery()
        .ref_id(ref)
        .datasource(ELASTICSEARCH)
        .query(UNDECRYPTED)
        .time_field("@timestamp")
        .metrics([es.Count().id("c"), es.Sum().id("b").field("network.bytes")])
        .bucket_aggs([es_terms(field, 10)])
    )


def pos(x: int, y: int, w: int, h: int) -> GridPos:
    return GridPos(x=x, y=y, w=w, h=h)


def ts(title: str, unit: str, *queries: Any) -> Any:
    panel = timeseries.Panel().title(title).unit(unit).datasource(PROMETHEUS)
    for query in queries:
        panel = panel.with_target(query)
    return panel


def failures_dashboard() -> Any:
    return (
        db.Dashboard("Decryptscope: TLS decryption failures")
        .uid("decryptscope-failures")
        .tags(["decryptscope", "tls", "pan-os"])
        .refresh("30s")
        .time("now-6h", "now")
        .timezone("browser")
        .with_panel(
            ts(
                "Failures per minute by cause",
                "short",
                prom_query("cause:decryptscope_decryption_failures:rate1m * 60", "{{cause}}"),
            )
            .description("Diagnosed decryption failures per minute, by root cause.")
            .grid_pos(pos(0, 0, 16, 9))
        )
        .with_panel(
            stat.Panel()
            .title("Failure ratio (5m)")
            .description("Share of TLS events (TRAFFIC, DECRYPTION) that are failures.")
            .datasource(PROMETHEUS)
            .unit("percentunit")
            .with_target(prom_query("sum(job:decryptscope_decryption_failures:ratio_rate5m)"))
            .grid_pos(pos(16, 0, 8, 4))
        )
        .with_panel(
            stat.Panel()
            .title("Decrypted sessions per second")
            .datasource(PROMETHEUS)
            .unit("reqps")
            .with_target(prom_query("sum(rate(decryptscope_decrypted_sessions_total[5m]))"))
            .grid_pos(pos(16, 4, 8, 5))
        )
        .with_panel(
            ts(
                "Failure ratio over time",
                "percentunit",
                prom_query("job:decryptscope_decryption_failures:ratio_rate5m", "5m"),
                prom_query("job:decryptscope_decryption_failures:ratio_rate1m", "1m", "B"),
            ).grid_pos(pos(0, 9, 12, 8))
        )
        .with_panel(
            ts(
                "Failures per minute by decryption mode",
                "short",
                prom_query("mode:decryptscope_decryption_failures:rate1m * 60", "{{mode}}"),
            ).grid_pos(pos(12, 9, 12, 8))
        )
        .with_panel(
            table.Panel()
            .title("Top causes now, with their remediation")
            .description("The latest 500 failures grouped by cause, with the fix to apply.")
            .datasource(ELASTICSEARCH)
            .with_target(es_raw(FAILURES, 500))
            .with_transformation(
                DataTransformerConfig(
                    id_val="groupBy",
                    options={
                        "fields": {
                            "decryptscope.cause": {"operation": "groupby", "aggregations": []},
                            "decryptscope.category": {"operation": "groupby", "aggregations": []},
                            "decryptscope.remediation": {
                                "operation": "aggregate",
                                "aggregations": ["first"],
                            },
                            "@timestamp": {"operation": "aggregate", "aggregations": ["count"]},
                        }
                    },
                )
            )
            .with_transformation(
                DataTransformerConfig(
                    id_val="sortBy",
                    options={"sort": [{"field": "@timestamp (count)", "desc": True}]},
                )
            )
            .grid_pos(pos(0, 17, 16, 10))
        )
        .with_panel(
            table.Panel()
            .title("Active alerts")
            .datasource(PROMETHEUS)
            .with_target(
                prom_query('ALERTS{alertstate="firing", alertname=~"Decrypt.*"}', "", instant=True)
            )
            .grid_pos(pos(16, 17, 8, 10))
        )
        .with_panel(exclusion_candidates().grid_pos(pos(0, 27, 24, 9)))
        .with_panel(
            stat.Panel()
            .title("TLS sessions decrypted (1h)")
            .description(
                "Share of TLS sessions the firewall decrypted, per firewall (metric_firewalls, "
                "else other), from TRAFFIC ends: every session ends with one."
            )
            .datasource(PROMETHEUS)
            .unit("percentunit")
            .with_target(
                prom_query(
                    "firewall:decryptscope_tls_sessions_decrypted:ratio_rate1h", "{{firewall}}"
                )
            )
            .grid_pos(pos(0, 36, 8, 8))
        )
        .with_panel(
            table.Panel()
            .title("Top undecrypted destinations")
            .description(
                "TLS sessions the firewall let through undecrypted (no decryption rule matched, or "
                "a No Decrypt rule), by destination address: sessions and bytes."
            )
            .datasource(ELASTICSEARCH)
            .with_target(es_undecrypted("destination.ip"))
            .grid_pos(pos(8, 36, 8, 8))
        )
        .with_panel(
            table.Panel()
            .title("Top undecrypted servers (SNI)")
            .description("No Decrypt handshakes the firewall logged, by server name.")
            .datasource(ELASTICSEARCH)
            .with_target(es_undecrypted("destination.domain"))
            .grid_pos(pos(16, 36, 8, 8))
        )
        .with_panel(
            ts(
                "Certificates by days left",
                "short",
                prom_query(
                    'role_days_left:decryptscope_certificates:count{days_left!="90+"}',
                    "{{role}} {{days_left}}",
                ),
            )
            .description(
                "Certificates by role and days left until Not After: server certificates of the "
                "DECRYPTION logs (inbound inspection presents its own), the firewall's expired "
                "ones (cert-expiry) and the declared Forward Trust / Untrust CA."
            )
            .grid_pos(pos(0, 44, 12, 8))
        )
        .with_panel(
            ts(
                "Change points per hour by kind",
                "short",
                prom_query(
                    "sum by (kind) (increase(decryptscope_change_points_total[1h]))", "{{kind}}"
                ),
            )
            .description("Changes seen in the logs; each is an annotation on the graphs.")
            .grid_pos(pos(12, 44, 12, 8))
        )
    )


def drilldown_dashboard() -> Any:
    cause = (
        db.TextBoxVariable("cause")
        .label("Cause")
        .description("A cause id from schemas/causes.toml, or * for all")
        .default_value("*")
    )
    return (
        db.Dashboard("Decryptscope: failure drill-down")
        .uid("decryptscope-drilldown")
        .tags(["decryptscope", "tls", "elasticsearch"])
        .refresh("1m")
        .time("now-24h", "now")
        .timezone("browser")
        .with_variable(cause)
        .with_panel(
            timeseries.Panel()
            .title("Failures over time by cause")
            .datasource(ELASTICSEARCH)
            .with_target(
                es_query(
                    CAUSE_FILTER,
                    [
                        es_terms("decryptscope.cause", 10, "2"),
                        es.DateHistogram().id("3").field("@timestamp"),
                    ],
                )
            )
            .grid_pos(pos(0, 0, 24, 8))
        )
        .with_panel(
            table.Panel()
            .title("Top failing servers (SNI)")
            .datasource(ELASTICSEARCH)
            .with_target(es_query(CAUSE_FILTER, [es_terms("tls.client.server_name", 20)]))
            .grid_pos(pos(0, 8, 8, 10))
        )
        .with_panel(
            table.Panel()
            .title("Rules per cause")
            .datasource(ELASTICSEARCH)
            .with_target(
                es_query(
                    CAUSE_FILTER,
                    [es_terms("decryptscope.cause", 10, "1"), es_terms("rule.name", 10, "2")],
                )
            )
            .grid_pos(pos(8, 8, 8, 10))
        )
        .with_panel(
            table.Panel()
            .title("Sources per cause")
            .datasource(ELASTICSEARCH)
            .with_target(
                es_query(
                    CAUSE_FILTER,
                    [es_terms("decryptscope.cause", 10, "1"), es_terms("source.ip", 10, "2")],
                )
            )
            .grid_pos(pos(16, 8, 8, 10))
        )
        .with_panel(
            table.Panel()
            .title("Recent failure events with evidence")
            .description(
                "The latest failures: cause, server, rule, source and the evidence that decided."
            )
            .datasource(ELASTICSEARCH)
            .with_target(es_raw(CAUSE_FILTER, 100))
            .with_transformation(
                DataTransformerConfig(
                    id_val="organize",
                    options={
                        "includeByName": {
                            "@timestamp": True,
                            "decryptscope.cause": True,
                            "decryptscope.mode": True,
                            "decryptscope.confidence": True,
                            "decryptscope.evidence": True,
                            "tls.client.server_name": True,
                            "rule.name": True,
                            "source.ip": True,
                            "destination.ip": True,
                            "observer.serial_number": True,
                        }
                    },
                )
            )
            .grid_pos(pos(0, 18, 24, 12))
        )
    )


def health_dashboard() -> Any:
    return (
        db.Dashboard("Decryptscope: pipeline health")
        .uid("decryptscope-health")
        .tags(["decryptscope", "pipeline"])
        .refresh("30s")
        .time("now-3h", "now")
        .timezone("browser")
        .with_panel(
            ts(
                "Syslog received per second by transport",
                "reqps",
                prom_query(
                    "sum by (transport) (rate(decryptscope_syslog_messages_total[1m]))",
                    "{{transport}}",
                ),
            ).grid_pos(pos(0, 0, 12, 8))
        )
        .with_panel(
            ts(
                "Events per second by log type",
                "reqps",
                prom_query(
                    "sum by (log_type) (rate(decryptscope_events_total[1m]))", "{{log_type}}"
                ),
                prom_query("sum(rate(decryptscope_events_published_total[1m]))", "published", "B"),
            ).grid_pos(pos(12, 0, 12, 8))
        )
        .with_panel(
            ts(
                "Consumer lag",
                "short",
                prom_query("sum by (topic) (decryptscope_consumer_lag_messages)", "{{topic}}"),
            ).grid_pos(pos(0, 8, 8, 8))
        )
        .with_panel(
            ts(
                "Dead letters per second",
                "reqps",
                prom_query(
                    "sum by (stage, error_type) (rate(decryptscope_dead_letters_total[5m]))",
                    "{{stage}} {{error_type}}",
                ),
            ).grid_pos(pos(8, 8, 8, 8))
        )
        .with_panel(
            ts(
                "Syslog dropped per second",
                "reqps",
                prom_query(
                    "sum by (transport, reason) (rate(decryptscope_syslog_dropped_total[5m]))",
                    "{{transport}} {{reason}}",
                ),
            ).grid_pos(pos(16, 8, 8, 8))
        )
        .with_panel(
            ts(
                "Elasticsearch bulk latency",
                "s",
                prom_query(
                    "histogram_quantile(0.5, sum by (le) "
                    "(rate(decryptscope_es_bulk_duration_seconds_bucket[5m])))",
                    "p50",
                ),
                prom_query(
                    "histogram_quantile(0.99, sum by (le) "
                    "(rate(decryptscope_es_bulk_duration_seconds_bucket[5m])))",
                    "p99",
                    "B",
                ),
            ).grid_pos(pos(0, 16, 8, 8))
        )
        .with_panel(
            ts(
                "Elasticsearch documents per second by result",
                "reqps",
                prom_query(
                    "sum by (result) (rate(decryptscope_es_documents_total[5m]))", "{{result}}"
                ),
                prom_query(
                    "sum(rate(decryptscope_es_bulk_errors_total[5m])) or vector(0)",
                    "bulk errors",
                    "B",
                ),
            ).grid_pos(pos(8, 16, 8, 8))
        )
        .with_panel(
            ts(
                "Parse latency",
                "s",
                prom_query(
                    "histogram_quantile(0.99, sum by (le) "
                    "(rate(decryptscope_parse_duration_seconds_bucket[5m])))",
                    "p99",
                ),
            ).grid_pos(pos(16, 16, 8, 8))
        )
        .with_panel(
            ts(
                "Ingest buffer, connections and correlation table",
                "short",
                prom_query("sum(decryptscope_ingest_buffer_bytes)", "buffer bytes"),
                prom_query(
                    "sum by (transport) (decryptscope_syslog_connections)",
                    "{{transport}} connections",
                    "B",
                ),
                prom_query("sum(decryptscope_correlation_entries)", "correlation entries", "C"),
            ).grid_pos(pos(0, 24, 24, 8))
        )
    )


DASHBOARDS = {
    "decryption-failures.json": failures_dashboard,
    "failure-drilldown.json": drilldown_dashboard,
    "pipeline-health.json": health_dashboard,
}


def _clean(node: Any) -> Any:
    """Drop what the builders emit but Grafana's schema does not take: unset (null) values,
    the ``auto*`` keys of interval variables on other variable types, and a placeholder
    variable id."""
    if isinstance(node, dict):
        out = {k: _clean(v) for k, v in node.items() if v is not None}
        if out.get("type") in {"textbox", "custom", "query", "constant"} and "name" in out:
            for key in ("auto", "auto_count", "auto_min", "id"):
                out.pop(key, None)
        return out
    if isinstance(node, list):
        return [_clean(item) for item in node]
    return node


def render(builder: Any) -> str:
    plain = json.loads(json.dumps(builder.build(), cls=JSONEncoder))
    plain.pop("style", None)  # removed from the dashboard schema
    plain = _clean(plain)
    if plain.get("uid") in ANNOTATED:
        annotations = plain.setdefault("annotations", {})
        annotations["list"] = [*annotations.get("list", []), CHANGE_ANNOTATION]
    return json.dumps(plain, sort_keys=True, indent=2) + "\n"


_ES_ANNOTATION_TYPE = (
    "// The Elasticsearch data source's annotation keys (Grafana's ElasticsearchAnnotationQuery),\n"
    "// which @grafana/schema's AnnotationQuery leaves to each data source.\n"
    "interface ElasticsearchAnnotation extends AnnotationQuery<DataQuery & { query: string }> {\n"
    "  timeField: string;\n"
    "  textField: string;\n"
    "  tagsField: string;\n"
    "}\n\n"
)


def typescript(name: str, text: str) -> str:
    head = f"// Generated by grafana/generate.py from dashboards/{name}: do not edit.\n"
    plain = json.loads(text)
    annotations = plain.get("annotations", {}).get("list")
    if not annotations:
        return (
            head + 'import type { Dashboard } from "@grafana/schema";\n\n'
            f"export const dashboard: Dashboard = {text.rstrip()};\n"
        )
    # The annotations get a literal of their own, checked against ElasticsearchAnnotation;
    # the dashboard literal refers to it.
    plain["annotations"]["list"] = TS_ANNOTATIONS
    body = json.dumps(plain, sort_keys=True, indent=2).replace(
        json.dumps(TS_ANNOTATIONS), "annotations"
    )
    listed = json.dumps(annotations, sort_keys=True, indent=2)
    return (
        head
        + 'import type { AnnotationQuery, Dashboard, DataQuery } from "@grafana/schema";\n\n'
        + _ES_ANNOTATION_TYPE
        + f"const annotations: ElasticsearchAnnotation[] = {listed};\n\n"
        + f"export const dashboard: Dashboard = {body};\n"
    )


def main(argv: list[str]) -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    TYPECHECK.mkdir(parents=True, exist_ok=True)
    for name, make in DASHBOARDS.items():
        text = render(make())
        (OUT / name).write_text(text)
        (TYPECHECK / name.replace(".json", ".ts")).write_text(typescript(name, text))
        print(f"wrote {OUT / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
