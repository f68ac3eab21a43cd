"""Every Prometheus metric of the pipeline, defined once.

Names carry the ``decryptscope_`` prefix, base units (seconds, bytes) and ``_total`` on
counters. Every label takes its values from a closed set: the ``*_label`` helpers below map an
open value (anything read from a log line or an error) onto that set, returning ``"other"`` for
what the set does not know. An IP address, SNI, certificate name or rule name is never a label.

``build_metrics(registry)`` defines the whole set on one ``CollectorRegistry``; ``METRICS`` is the
process-wide instance on prometheus_client's default registry, which is what ``/metrics`` of the
ingest and of the worker serve. Tests build their own on a fresh registry.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import start_http_server

from pipeline import errors

PREFIX = "decryptscope_"
OTHER = "other"

# --- closed label sets ---------------------------------------------------------------------

# PAN-OS log types (upper case, as the parser's `type`: schemas/panos/logtypes.csv), plus
# SESSION for `show session id`.
LOG_TYPES = frozenset(
    {
        "TRAFFIC",
        "THREAT",
        "DECRYPTION",
        "SYSTEM",
        "CONFIG",
        "HIPMATCH",
        "GLOBALPROTECT",
        "USERID",
        "AUTHENTICATION",
        "AUTH",
        "TUNNEL",
        "SCTP",
        "IPTAG",
        "CORRELATION",
        "GTP",
        "SESSION",
    }
)

# TRAFFIC "Session End Reason" values documented for PAN-OS (Traffic Log Fields) and the
# Cortex Data Lake additions.
END_REASONS = frozenset(
    {
        "threat",
        "policy-deny",
        "decrypt-cert-validation",
        "decrypt-unsupport-param",
        "decrypt-error",
        "tcp-rst-from-client",
        "tcp-rst-from-server",
        "resources-unavailable",
        "tcp-fin",
        "tcp-reuse",
        "decoder",
        "aged-out",
        "unknown",
        "n/a",
        "request-timeout",
        "shutdown-from-endpoint",
        "abort-from-endpoint",
        "split-tunnel",
    }
)

# Decryption modes of a Diagnosis.
MODES = frozenset({"forward-proxy", "inbound-inspection", "globalprotect", "no-decrypt", "unknown"})

TRANSPORTS = frozenset({"udp", "tcp", "tls"})

# Why the ingest dropped a syslog message.
DROP_REASONS = frozenset(
    {"oversized", "framing", "buffer_full", "connection_limit", "idle_timeout", "tls", "publish"}
)

# Pipeline stages that can dead-letter (the `stage` of the error tree, plus the worker's steps).
STAGES = frozenset(
    {
        "pipeline",
        "config",
        "stack",
        "ingest",
        "framing",
        "parse",
        "diagnose",
        "correlate",
        "ecs",
        "publish",
        "index",
        "alert",
        "changes",
    }
)

# Per-document outcomes of an Elasticsearch bulk request.
ES_RESULTS = frozenset({"created", "updated", "noop", "deleted", "error", "retried"})

# Elasticsearch error types worth telling apart on a dashboard; the rest count as "other".
ES_ERROR_TYPES = frozenset(
    {
        "mapper_parsing_exception",
        "document_parsing_exception",
        "strict_dynamic_mapping_exception",
        "illegal_argument_exception",
        "version_conflict_engine_exception",
        "es_rejected_execution_exception",
        "circuit_breaking_exception",
        "cluster_block_exception",
        "index_not_found_exception",
        "action_request_validation_exception",
        "invalid_index_name_exception",
        "unavailable_shards_exception",
        "timeout",
        "connection",
        "transport",
        "serialization",
    }
)

# Kinds of in-stream alert (pipeline.alerting, and the alert a change point raises at once).
ALERT_KINDS = frozenset({"spike", "new_cause", "new_server", "regression", "certificate_expired"})

# Whether a TLS session was decrypted (decryptscope_tls_sessions_total).
DECRYPTED = frozenset({"yes", "no"})

# Partitions above this index share the label "other" (a topic with more is unusual).
MAX_PARTITION_LABELS = 256

# Buckets: parsing one line takes microseconds; a bulk request milliseconds to seconds.
PARSE_BUCKETS = (
    0.000005,
    0.00001,
    0.000025,
    0.00005,
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.05,
    0.1,
)
BULK_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


@cache
def known_error_types() -> frozenset[str]:
    """Every ``error_type`` of the error tree, plus the closed set of parse error types."""
    found = set(errors.PARSE_ERROR_TYPES)
    pending = [errors.DecryptscopeError]
    while pending:
        cls = pending.pop()
        found.add(cls.error_type)
        pending.extend(cls.__subclasses__())
    return frozenset(found)


# --- label helpers: open value -> closed label set ------------------------------------------


def _closed(value: object, allowed: Collection[str]) -> str:
    return value if isinstance(value, str) and value in allowed else OTHER


def log_type_label(value: object) -> str:
    """A PAN-OS log type (upper case) or "other"."""
    if isinstance(value, str) and value not in LOG_TYPES:
        value = value.upper()
    return _closed(value, LOG_TYPES)


def end_reason_label(value: object) -> str:
    """A documented TRAFFIC session end reason or "other"."""
    return _closed(value, END_REASONS)


def cause_label(m: Metrics, value: object) -> str:
    """A cause id of the catalogue (``prime_causes``) or "other"."""
    return _closed(value, m.causes)


def category_label(m: Metrics, value: object) -> str:
    """A category of the catalogue (``prime_causes``) or "other"."""
    return _closed(value, m.categories)


def mode_label(value: object) -> str:
    """A decryption mode or "other"."""
    return _closed(value, MODES)


def transport_label(value: object) -> str:
    return _closed(value, TRANSPORTS)


def drop_reason_label(value: object) -> str:
    return _closed(value, DROP_REASONS)


def stage_label(value: object) -> str:
    return _closed(value, STAGES)


def error_type_label(value: object) -> str:
    """An ``error_type`` of the project's error tree or "other"."""
    return _closed(value, known_error_types())


def es_result_label(value: object) -> str:
    return _closed(value, ES_RESULTS)


def es_error_type_label(value: object) -> str:
    """An Elasticsearch error ``type`` worth its own series, or "other"."""
    return _closed(value, ES_ERROR_TYPES)


def alert_kind_label(value: object) -> str:
    return _closed(value, ALERT_KINDS)


def change_kind_label(value: object, known: Collection[str]) -> str:
    """A kind of change point (``pipeline.changes.kinds()``, passed in) or "other"."""
    return _closed(value, known)


def firewall_label(serial: object, name: object, known: Collection[str]) -> str:
    """The firewall as the ``metric_firewalls`` setting names it (by serial or device name),
    or "other": only a configured set of firewalls gets a label value of its own."""
    if isinstance(serial, str) and serial in known:
        return serial
    if isinstance(name, str) and name in known:
        return name
    return OTHER


def decrypted_label(value: object) -> str:
    return "yes" if value is True else "no" if value is False else OTHER


def topic_label(value: object, known: Collection[str]) -> str:
    """A topic name from the configured ones (``known``) or "other"."""
    return _closed(value, known)


def partition_label(value: object) -> str:
    """A partition number below ``MAX_PARTITION_LABELS`` as text, else "other"."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < MAX_PARTITION_LABELS:
        return str(value)
    return OTHER


# --- the metric set --------------------------------------------------------------------------


@dataclass(frozen=True)
class Metrics:
    registry: CollectorRegistry
    events: Counter
    events_published: Counter
    decryption_failures: Counter
    traffic_end_reasons: Counter
    decrypted_sessions: Counter
    dead_letters: Counter
    parse_duration: Histogram
    es_bulk_duration: Histogram
    es_documents: Counter
    es_bulk_errors: Counter
    syslog_messages: Counter
    syslog_dropped: Counter
    syslog_connections: Gauge
    correlation_entries: Gauge
    alerts: Counter
    consumer_lag: Gauge
    ingest_buffer_bytes: Gauge
    correlation_evicted: Counter
    dead_letter_failures: Counter
    change_points: Counter
    tls_sessions: Counter
    certificates: Gauge
    regression_last: Gauge
    # The cause catalogue's ids and categories: the closed sets of the failure labels, given
    # by whoever knows the catalogue (``prime_causes``).
    causes: set[str] = field(default_factory=set)
    categories: set[str] = field(default_factory=set)


def build_metrics(
    registry: CollectorRegistry | None = None,
    *,
    prime: bool = True,
    causes: Iterable[tuple[str, str]] = (),
) -> Metrics:
    """Define every metric on ``registry`` (a fresh one when None).

    ``prime`` creates the series of the closed label sets at zero, so that Prometheus sees a
    counter's first increment as an increase rather than as the series appearing; ``causes``
    are the catalogue's (cause, category) pairs (``prime_causes``)."""
    reg = CollectorRegistry(auto_describe=True) if registry is None else registry

    def counter(name: str, doc: str, labels: tuple[str, ...] = ()) -> Counter:
        return Counter(PREFIX + name, doc, labels, registry=reg)

    def gauge(name: str, doc: str, labels: tuple[str, ...] = ()) -> Gauge:
        return Gauge(PREFIX + name, doc, labels, registry=reg)

    metrics = Metrics(
        registry=reg,
        events=counter("events", "Log records parsed, by PAN-OS log type.", ("log_type",)),
        events_published=counter("events_published", "ECS events published to Kafka."),
        decryption_failures=counter(
            "decryption_failures",
            "Decryption failures diagnosed, by cause, category and decryption mode.",
            ("cause", "category", "mode"),
        ),
        traffic_end_reasons=counter(
            "traffic_end_reasons", "TRAFFIC records by session end reason.", ("end_reason",)
        ),
        decrypted_sessions=counter(
            "decrypted_sessions", "TRAFFIC records of sessions the firewall decrypted."
        ),
        dead_letters=counter(
            "dead_letters", "Messages sent to the dead-letter topic.", ("stage", "error_type")
        ),
        parse_duration=Histogram(
            PREFIX + "parse_duration_seconds",
            "Time to parse one log line.",
            registry=reg,
            buckets=PARSE_BUCKETS,
        ),
        es_bulk_duration=Histogram(
            PREFIX + "es_bulk_duration_seconds",
            "Duration of one Elasticsearch bulk request.",
            registry=reg,
            buckets=BULK_BUCKETS,
        ),
        es_documents=counter(
            "es_documents", "Documents sent to Elasticsearch, by bulk item result.", ("result",)
        ),
        es_bulk_errors=counter(
            "es_bulk_errors", "Elasticsearch bulk errors, by error type.", ("error_type",)
        ),
        syslog_messages=counter(
            "syslog_messages", "Syslog messages received, by transport.", ("transport",)
        ),
        syslog_dropped=counter(
            "syslog_dropped",
            "Syslog messages dropped by the ingest, by transport and reason.",
            ("transport", "reason"),
        ),
        syslog_connections=gauge(
            "syslog_connections", "Open syslog connections, by transport.", ("transport",)
        ),
        correlation_entries=gauge(
            "correlation_entries", "Sessions held in this worker's correlation table."
        ),
        alerts=counter(
            "alerts",
            "In-stream decryption failure alerts emitted, by kind and cause.",
            ("kind", "cause"),
        ),
        consumer_lag=gauge(
            "consumer_lag_messages",
            "Messages between the committed offset and the end of a partition.",
            ("topic", "partition"),
        ),
        ingest_buffer_bytes=gauge(
            "ingest_buffer_bytes", "Bytes waiting in the ingest's Kafka producer buffer."
        ),
        correlation_evicted=counter(
            "correlation_evicted",
            "Sessions dropped from the correlation table to stay within correlation_max_entries.",
        ),
        dead_letter_failures=counter(
            "dead_letter_failures",
            "Messages lost because the dead-letter topic refused them too, by stage.",
            ("stage",),
        ),
        change_points=counter(
            "change_points",
            "Change points seen in the logs, by kind and firewall.",
            ("kind", "firewall"),
        ),
        tls_sessions=counter(
            "tls_sessions",
            "TLS sessions seen decrypted or not, by the log type that said so (TRAFFIC ends: "
            "every session; DECRYPTION: the handshakes the firewall logs, with their mode).",
            ("log_type", "mode", "decrypted", "firewall"),
        ),
        certificates=gauge(
            "certificates",
            "Certificates this worker knows, by role and days left until Not After.",
            ("role", "days_left"),
        ),
        regression_last=gauge(
            "regression_last_timestamp_seconds",
            "When a cause's failures on a firewall last rose after a change point of it.",
            ("cause", "change_kind", "firewall"),
        ),
    )
    if prime:
        _prime(metrics)
        prime_causes(metrics, causes)
    return metrics


def _prime(m: Metrics) -> None:
    for log_type in LOG_TYPES:
        m.events.labels(log_type)
    for reason in END_REASONS:
        m.traffic_end_reasons.labels(reason)
    for transport in TRANSPORTS:
        m.syslog_messages.labels(transport)
    for transport in ("tcp", "tls"):
        m.syslog_connections.labels(transport)
    for transport in TRANSPORTS:
        for reason in DROP_REASONS:
            m.syslog_dropped.labels(transport, reason)
    for result in ("created", "updated", "error"):
        m.es_documents.labels(result)
    for stage, error_type in (("parse", "parse"), ("publish", "sink"), ("index", "sink")):
        m.dead_letters.labels(stage, error_type)
    m.dead_letter_failures.labels("publish")


def prime_causes(m: Metrics, causes: Iterable[tuple[str, str]]) -> None:
    """Make ``causes`` ((cause id, category) pairs of the catalogue) the closed label sets of
    the failure metrics, and expose every (cause, its category, mode) at zero from the first
    scrape on: a series born with a burst has the burst as its first sample, rate() sees no
    increase and no spike alert fires."""
    for cause, category in causes:
        m.causes.add(cause)
        m.categories.add(category)
        for mode in MODES:
            m.decryption_failures.labels(cause, category, mode)


METRICS = build_metrics(REGISTRY)


def prime_deployment(m: Metrics, change_kinds: Collection[str], firewalls: Collection[str]) -> None:
    """Create at zero the series whose labels come from the deployment: change points and TLS
    sessions of each configured firewall (and "other"), so that a first change or session is
    an increase that ``increase()`` sees."""
    labels = (*firewalls, OTHER)
    for firewall in labels:
        for kind in change_kinds:
            m.change_points.labels(kind, firewall)
        for mode in MODES:
            for decrypted in DECRYPTED:
                for log_type in ("TRAFFIC", "DECRYPTION"):
                    m.tls_sessions.labels(log_type, mode, decrypted, firewall)


# --- update paths ----------------------------------------------------------------------------


def observe_batch(
    m: Metrics,
    *,
    records: Mapping[str, int],
    end_reasons: Mapping[str, int],
    decrypted: int,
    failures: Mapping[tuple[str, str, str], int],
    dead_letters: Mapping[tuple[str, str], int],
    parse_seconds: Iterable[float],
    published: int,
) -> None:
    """Count one batch: records per log type, TRAFFIC end reasons, decrypted sessions,
    failures per (cause, category, mode), dead letters per (stage, error type), the sampled
    parse times and the events published. One increment per label set; every value goes
    through its label helper."""
    for log_type, n in records.items():
        m.events.labels(log_type_label(log_type)).inc(n)
    for reason, n in end_reasons.items():
        m.traffic_end_reasons.labels(end_reason_label(reason)).inc(n)
    if decrypted:
        m.decrypted_sessions.inc(decrypted)
    for (cause, category, mode), n in failures.items():
        m.decryption_failures.labels(
            cause_label(m, cause), category_label(m, category), mode_label(mode)
        ).inc(n)
    for (stage, error_type), n in dead_letters.items():
        m.dead_letters.labels(stage_label(stage), error_type_label(error_type)).inc(n)
    observe = m.parse_duration.observe
    for seconds in parse_seconds:
        observe(seconds)
    if published:
        m.events_published.inc(published)


def observe_dead_letter(m: Metrics, stage: object, error_type: object) -> None:
    m.dead_letters.labels(stage_label(stage), error_type_label(error_type)).inc()


def observe_dead_letter_failure(m: Metrics, stage: object) -> None:
    m.dead_letter_failures.labels(stage_label(stage)).inc()


def observe_alert(m: Metrics, kind: object, cause: object) -> None:
    m.alerts.labels(alert_kind_label(kind), cause_label(m, cause)).inc()


def set_consumer_lag(
    m: Metrics, topic: object, partition: object, lag: float, known_topics: Collection[str]
) -> None:
    m.consumer_lag.labels(topic_label(topic, known_topics), partition_label(partition)).set(lag)


def update_consumer_lag(m: Metrics, consumer: Any, known_topics: Collection[str]) -> None:
    """Set the lag of every assigned partition of ``known_topics`` from a Faust consumer
    (``app.consumer``): its end offset minus the offset committed for this consumer group.
    Call it from a Faust timer; internal (changelog, repartition) topics are left out."""
    committed = getattr(consumer, "_committed_offset", {})
    for tp in consumer.assignment():
        if tp.topic not in known_topics:
            continue
        end = consumer.highwater(tp)
        if end is None:
            continue
        done = committed.get(tp) or 0
        set_consumer_lag(m, tp.topic, tp.partition, max(0, end - done), known_topics)


# --- serving ---------------------------------------------------------------------------------


def serve_metrics(
    port: int, bind: str = "127.0.0.1", registry: CollectorRegistry = REGISTRY
) -> tuple[Any, Any]:
    """Serve ``registry`` on ``http://bind:port/metrics`` from a daemon thread; returns the
    (server, thread) pair so the caller can ``server.shutdown()``."""
    return start_http_server(port, addr=bind, registry=registry)
