"""The metric set: a clean exposition for promtool, and labels that stay within closed sets."""

from __future__ import annotations

import shutil
import socket
import subprocess
import urllib.request

import pytest
from prometheus_client import CollectorRegistry

from pipeline import metrics as m
from pipeline.diagnosis import load_catalogue


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def series(registry: CollectorRegistry) -> set[tuple[str, tuple]]:
    return {
        (sample.name, tuple(sorted(sample.labels.items())))
        for family in registry.collect()
        for sample in family.samples
    }


def exercise(metrics: m.Metrics) -> None:
    """One update on every metric, through the helpers the pipeline uses."""
    m.observe_batch(
        metrics,
        records={"TRAFFIC": 1, "DECRYPTION": 1},
        end_reasons={"decrypt-error": 1},
        decrypted=1,
        failures={("x", "y", "forward-proxy"): 1},
        dead_letters={("parse", "too_few_columns"): 1},
        parse_seconds=[0.00002],
        published=2,
    )
    metrics.es_bulk_duration.observe(0.2)
    metrics.es_documents.labels(m.es_result_label("created")).inc(5)
    metrics.es_bulk_errors.labels(m.es_error_type_label("mapper_parsing_exception")).inc()
    metrics.syslog_messages.labels(m.transport_label("udp")).inc()
    metrics.syslog_dropped.labels(m.transport_label("udp"), m.drop_reason_label("oversized")).inc()
    metrics.syslog_connections.labels("tcp").set(3)
    metrics.correlation_entries.set(10)
    m.observe_alert(metrics, "spike", "x")
    m.set_consumer_lag(metrics, "panos.raw", 3, 12, known_topics={"panos.raw"})
    metrics.ingest_buffer_bytes.set(1024)


def test_promtool_accepts_a_real_scrape():
    metrics = m.build_metrics(CollectorRegistry())
    exercise(metrics)
    port = free_port()
    server, thread = m.serve_metrics(port, "127.0.0.1", metrics.registry)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
            body = resp.read()
    finally:
        server.shutdown()
        thread.join(timeout=10)
    assert b"decryptscope_decrypted_sessions_total 1.0" in body
    promtool = shutil.which("promtool")
    assert promtool, "promtool is not installed (apt-get install prometheus)"
    result = subprocess.run(
        [promtool, "check", "metrics"], input=body, capture_output=True, timeout=60, check=False
    )
    assert result.returncode == 0, (result.stdout + result.stderr).decode()
    assert result.stdout + result.stderr == b""  # no lint remarks either


def test_every_metric_is_prefixed_with_base_units_and_counters_end_in_total():
    metrics = m.build_metrics(CollectorRegistry())
    exercise(metrics)
    for family in metrics.registry.collect():
        assert family.name.startswith("decryptscope_"), family.name
        assert not family.name.endswith(("_ms", "_milliseconds", "_kb", "_mb")), family.name
        if family.type == "counter":
            assert all(s.name.endswith(("_total", "_created")) for s in family.samples), family.name


@pytest.mark.slow
def test_a_million_distinct_open_values_do_not_grow_the_series():
    metrics = m.build_metrics(CollectorRegistry())
    exercise(metrics)
    before = series(metrics.registry)

    def feed(start: int, stop: int) -> None:
        for i in range(start, stop):
            sni = f"host{i}.example.com"
            rule = f"rule-{i}"
            ip = f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}"
            # Open values where the pipeline might wrongly pass them: the helpers map them away.
            m.observe_batch(
                metrics,
                records={rule: 1},
                end_reasons={sni: 1},
                decrypted=0,
                failures={(sni, rule, ip): 1},
                dead_letters={},
                parse_seconds=(),
                published=0,
            )
            if i % 10 == 0:
                m.observe_dead_letter(metrics, ip, sni)
                m.observe_alert(metrics, rule, sni)
                metrics.es_bulk_errors.labels(m.es_error_type_label(sni)).inc()
                metrics.syslog_dropped.labels(
                    m.transport_label(ip), m.drop_reason_label(rule)
                ).inc()
                m.set_consumer_lag(metrics, sni, i, 1, known_topics={"panos.raw"})

    feed(0, 500_000)
    middle = series(metrics.registry)
    # New series only for the "other" value (and the bounded partition numbers).
    for name, labels in middle - before:
        values = dict(labels)
        assert "other" in values.values(), (name, labels)
    feed(500_000, 1_000_000)
    assert series(metrics.registry) == middle
    # The closed sets bound it: most are the failure series, one per cause and mode.
    assert len(middle) < 600


@pytest.mark.parametrize(
    ("helper", "value", "expected"),
    [
        (m.log_type_label, "traffic", "TRAFFIC"),
        (m.log_type_label, "DECRYPTION", "DECRYPTION"),
        (m.log_type_label, "NOPE", "other"),
        (m.log_type_label, None, "other"),
        (m.end_reason_label, "decrypt-cert-validation", "decrypt-cert-validation"),
        (m.end_reason_label, "n/a", "n/a"),
        (m.end_reason_label, "www.example.com", "other"),
        (m.mode_label, "inbound-inspection", "inbound-inspection"),
        (m.mode_label, "sideways", "other"),
        (m.transport_label, "tls", "tls"),
        (m.transport_label, "quic", "other"),
        (m.stage_label, "parse", "parse"),
        (m.error_type_label, "too_few_columns", "too_few_columns"),
        (m.error_type_label, "config", "config"),
        (m.error_type_label, "203.0.113.9", "other"),
        (m.es_error_type_label, "mapper_parsing_exception", "mapper_parsing_exception"),
        (m.es_error_type_label, "weird_exception", "other"),
        (m.alert_kind_label, "new_server", "new_server"),
        (m.partition_label, 5, "5"),
        (m.partition_label, 100_000, "other"),
        (m.partition_label, -1, "other"),
        (m.partition_label, True, "other"),
    ],
)
def test_label_helpers(helper, value, expected):
    assert helper(value) == expected


def test_causes_come_from_the_catalogue():
    catalogue = load_catalogue()
    metrics = m.build_metrics(CollectorRegistry(), causes=catalogue.labels())
    for cause in catalogue.causes.values():
        assert m.cause_label(metrics, cause.id) == cause.id
        assert m.category_label(metrics, cause.category) == cause.category
    assert m.cause_label(metrics, "not-a-cause-" * 3) == "other"
    assert m.cause_label(m.build_metrics(CollectorRegistry()), cause.id) == "other"


def test_every_cause_and_mode_pair_is_exposed_at_zero_from_the_start():
    # A failure series born mid-burst has the burst as its first sample, so rate() never sees
    # the increase: each valid (cause, category, mode) must exist at 0 before any failure.
    catalogue = load_catalogue()
    metrics = m.build_metrics(CollectorRegistry(), causes=catalogue.labels())
    exposed = {
        (labels["cause"], labels["category"], labels["mode"]): value
        for name, labels, value in (
            (s.name, s.labels, s.value)
            for family in metrics.registry.collect()
            for s in family.samples
        )
        if name == "decryptscope_decryption_failures_total"
    }
    wanted = {
        (cause.id, cause.category, mode)
        for cause in catalogue.causes.values()
        for mode in catalogue.modes
    }
    assert set(exposed) == wanted
    assert set(exposed.values()) == {0.0}


def test_a_batch_of_unknown_causes_counts_as_other():
    metrics = m.build_metrics(CollectorRegistry(), causes=load_catalogue().labels())
    m.observe_batch(
        metrics,
        records={"TRAFFIC": 2},
        end_reasons={"decrypt-error": 2},
        decrypted=0,
        failures={("made-up-cause", "made-up", "forward-proxy"): 2},
        dead_letters={},
        parse_seconds=(),
        published=2,
    )
    value = metrics.registry.get_sample_value(
        "decryptscope_decryption_failures_total",
        {"cause": "other", "category": "other", "mode": "forward-proxy"},
    )
    assert value == 2
    assert (
        metrics.registry.get_sample_value(
            "decryptscope_traffic_end_reasons_total", {"end_reason": "decrypt-error"}
        )
        == 2
    )


def test_consumer_lag_from_a_faust_consumer():
    from faust.types import TP

    class Consumer:
        # The three things update_consumer_lag reads of faust's Consumer.
        _committed_offset = {TP("panos.raw", 0): 90, TP("panos.raw", 1): None}

        def assignment(self):
            return {TP("panos.raw", 0), TP("panos.raw", 1), TP("app-table-changelog", 0)}

        def highwater(self, tp):
            return {0: 100, 1: 7}[tp.partition]

    metrics = m.build_metrics(CollectorRegistry())
    m.update_consumer_lag(metrics, Consumer(), {"panos.raw"})
    lag = metrics.registry.get_sample_value
    name = "decryptscope_consumer_lag_messages"
    assert lag(name, {"topic": "panos.raw", "partition": "0"}) == 10
    assert lag(name, {"topic": "panos.raw", "partition": "1"}) == 7
    assert lag(name, {"topic": "other", "partition": "0"}) is None
