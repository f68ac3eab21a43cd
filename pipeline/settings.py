"""One frozen Settings object for the whole program.

Values come, in increasing precedence, from the defaults below, an optional TOML file (flat
keys named like the fields, or grouped in tables whose keys are joined with ``_``), and
environment variables ``DECRYPTSCOPE_<FIELD>``. No other module reads the environment: the
object is built once at the edge (the CLI, a test fixture) and passed down.

Secrets have ``<name>_file`` twins so they can come from mounted files; ``repr`` never shows
them.
"""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from pipeline.errors import ConfigError

ENV_PREFIX = "DECRYPTSCOPE_"
CONFIG_ENV = ENV_PREFIX + "CONFIG"

# Fields whose values must never be printed, logged or exported.
SECRET_FIELDS = frozenset(
    {
        "kafka_sasl_password",
        "kafka_ssl_key_password",
        "es_password",
        "es_api_key",
        "syslog_tls_key_password",
    }
)


# Kafka's rule for topic names (org.apache.kafka.common.internals.Topic.validate): these
# characters, 1 to 249 of them, and neither "." nor "..".
_TOPIC_NAME = re.compile(r"[A-Za-z0-9._-]{1,249}")


def _default_cache_dir() -> Path:
    return Path.home() / ".cache" / "decryptscope"


@dataclass(frozen=True)
class Settings:
    # --- local stack (decryptscope stack up|down|status) ---------------------------------
    cache_dir: Path = field(default_factory=_default_cache_dir)
    kafka_version: str = "4.1.1"
    log4j_version: str = "2.24.3"
    # Newest 9.x first; `stack up` uses the first one that resolves on Maven Central.
    es_versions: tuple[str, ...] = ("9.5.4", "9.5.3", "9.5.2", "9.5.0", "9.4.6", "9.3.8")
    es_java_home: str = "/usr/lib/jvm/temurin-25-jdk-amd64"
    stack_host: str = "127.0.0.1"
    kafka_port: int = 9092
    # 9093 is Alertmanager's; the KRaft controller listener goes elsewhere.
    kafka_controller_port: int = 9095
    es_port: int = 9200
    es_transport_port: int = 9300
    prometheus_port: int = 9090
    alertmanager_port: int = 9093
    alertmanager_cluster_port: int = 9094
    kafka_heap: str = "512m"
    es_heap: str = "512m"
    es_user: str = "decryptscope-es"
    stack_start_timeout_s: float = 180.0
    # Extra scrape targets for the stack's Prometheus (host:port of /metrics endpoints).
    scrape_targets: tuple[str, ...] = ("127.0.0.1:6066", "127.0.0.1:9466")
    # A mirror of Maven Central for `stack fetch` (e.g. a Nexus URL); empty: Maven's own config.
    maven_repository: str = ""

    # --- Kafka clients ------------------------------------------------------------------
    kafka_bootstrap: str = "127.0.0.1:9092"
    kafka_security_protocol: str = "PLAINTEXT"  # PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL
    kafka_sasl_mechanism: str = "SCRAM-SHA-512"
    kafka_sasl_username: str = ""
    kafka_sasl_password: str = ""
    kafka_ssl_cafile: str = ""
    # A client certificate, for brokers that authenticate clients by TLS (ssl.client.auth).
    kafka_ssl_certfile: str = ""
    kafka_ssl_keyfile: str = ""
    kafka_ssl_key_password: str = ""
    topic_raw: str = "panos.raw"
    topic_events: str = "panos.events"
    topic_alerts: str = "panos.alerts"
    topic_dlq: str = "panos.dlq"
    # The events as OCSF (pipeline/ocsf.py) on a topic of their own, for SIEMs that read OCSF.
    ocsf_enabled: bool = False
    topic_events_ocsf: str = "panos.events.ocsf"
    topic_partitions: int = 6
    topic_replication: int = 1
    # Compression of what ingest publishes: lz4 costs the ingest about a sixth less CPU per
    # event than gzip (bench/README.md, "Ingest"); gzip, zstd (with the zstandard package) or
    # "" for none also work.
    kafka_compression: str = "lz4"

    # --- Elasticsearch ------------------------------------------------------------------
    es_url: str = "http://127.0.0.1:9200"
    es_username: str = ""
    es_password: str = ""
    es_api_key: str = ""
    es_ca_certs: str = ""
    index_prefix: str = "decryptscope-events"
    alerts_index: str = "decryptscope-alerts"
    bulk_max_retries: int = 0  # 0: retry retriable failures forever (backpressure, never drop)
    bulk_backoff_max_s: float = 30.0

    # --- syslog ingest ------------------------------------------------------------------
    syslog_bind: str = "127.0.0.1"
    syslog_udp_port: int = 5514
    syslog_tcp_port: int = 5514
    syslog_tls_port: int = 6514
    syslog_tls_cert: str = ""
    syslog_tls_key: str = ""
    syslog_tls_key_password: str = ""
    syslog_tls_client_ca: str = ""  # set to require and verify client certificates (mTLS)
    max_message_bytes: int = 65536
    max_connections: int = 1024
    idle_timeout_s: float = 300.0
    ingest_buffer_bytes: int = 64 * 1024 * 1024
    ingest_metrics_port: int = 9466
    spool_dir: str = ""
    spool_max_bytes: int = 1024 * 1024 * 1024
    ingest_linger_ms: int = 10
    # Address of the ingest's /metrics (0.0.0.0 where Prometheus scrapes from elsewhere).
    ingest_metrics_bind: str = "127.0.0.1"

    # --- worker ---------------------------------------------------------------------------
    worker_id: str = "decryptscope"
    web_bind: str = "127.0.0.1"
    web_port: int = 6066
    worker_data_dir: str = ""  # empty: <cache_dir>/worker
    correlation_window_s: float = 120.0
    correlation_max_entries: int = 200_000
    default_timezone: str = "UTC"
    # serial=timezone pairs, e.g. ("007051000113358=Europe/Paris",)
    device_timezones: tuple[str, ...] = ()
    # The worker takes panos.raw in batches of at most batch_size messages, waiting at most
    # batch_max_wait_s for a batch to fill; one batch is one bulk request.
    batch_size: int = 1000
    batch_max_wait_s: float = 0.5
    # Index into Elasticsearch (false: publish to panos.events only, e.g. where a SIEM's own
    # consumer indexes, or to measure processing alone).
    worker_index: bool = True
    # How long the consumer group waits for a silent worker before its partitions move to the
    # others (Kafka's session.timeout.ms; the broker allows 6 s to 30 min).
    worker_session_timeout_s: float = 45.0

    # --- spike detection ------------------------------------------------------------------
    alert_window_s: int = 60
    alert_baseline_windows: int = 30
    alert_min_count: int = 20
    alert_ratio: float = 3.0
    alert_sigma: float = 4.0
    alert_ewma_alpha: float = 0.2
    alert_new_cause_min_count: int = 5
    # An alert does not repeat for this many windows; per-cause server baselines kept.
    alert_cooldown_windows: int = 10
    alert_max_servers: int = 1000
    # A window is evaluated this long after its end, so that every worker's count is in.
    alert_grace_s: float = 10.0

    # --- recommendations (decryptscope recommend, analyze) -----------------------------------
    # A destination is recommended for exclusion from decryption only with at least
    # recommend_min_failures failures from recommend_min_clients distinct clients over at least
    # recommend_min_span_s seconds (and no decrypted session to it); every recommendation is to
    # be reviewed recommend_review_days after its last failure.
    recommend_min_failures: int = 20
    recommend_min_clients: int = 3
    recommend_min_span_s: float = 3600.0
    recommend_review_days: int = 30

    # --- change points, coverage, certificates --------------------------------------------
    # Changes the logs cannot show, each "TIME[,serial]" (ISO 8601; without a serial, a change
    # of every firewall): annotations, before/after in analyze, regression alerts in the stream.
    declared_changes: tuple[str, ...] = ()
    # The windows compared before and after a change point, and when a failure cause counts as
    # grown: at least change_min_failures after, at change_growth_factor times its rate before.
    change_before_s: float = 3600.0
    change_after_s: float = 3600.0
    change_growth_factor: float = 2.0
    change_min_failures: int = 5
    # Change points of one kind on one firewall this close together are one (a commit shows in
    # a CONFIG row, then in SYSTEM lines); analyze keeps the last one's time.
    change_merge_s: float = 300.0
    # Firewalls (serial or device name) whose metrics carry their name; the others "other".
    metric_firewalls: tuple[str, ...] = ()
    # Certificates no log shows: the decryption CAs and their Not After (ISO 8601).
    forward_trust_ca: str = ""
    forward_trust_ca_not_after: str = ""
    forward_untrust_ca: str = ""
    forward_untrust_ca_not_after: str = ""
    # analyze lists the certificates that expire within this many days.
    certificate_warn_days: int = 30

    def __repr__(self) -> str:
        parts = []
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name in SECRET_FIELDS and value:
                value = "***"
            parts.append(f"{f.name}={value!r}")
        return f"Settings({', '.join(parts)})"

    def public_dict(self) -> dict[str, Any]:
        """The settings as plain data with secrets masked, for status and diagnostics."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name in SECRET_FIELDS:
                value = "***" if value else ""
            elif isinstance(value, Path):
                value = str(value)
            out[f.name] = value
        return out

    @property
    def worker_dir(self) -> Path:
        return Path(self.worker_data_dir) if self.worker_data_dir else self.cache_dir / "worker"

    def timezone_for(self, serial: str) -> str:
        for pair in self.device_timezones:
            key, _, tz = pair.partition("=")
            if key == serial:
                return tz
        return self.default_timezone


_FIELDS = {f.name: f for f in dataclasses.fields(Settings)}
_HINTS = typing.get_type_hints(Settings)


def _coerce(name: str, raw: Any) -> Any:
    """Turn a TOML or environment value into the field's type, or raise ConfigError."""
    hint = _HINTS[name]
    origin = typing.get_origin(hint)
    try:
        if hint is bool:
            if isinstance(raw, bool):
                return raw
            text = str(raw).strip().lower()
            if text in {"1", "true", "yes", "on"}:
                return True
            if text in {"0", "false", "no", "off"}:
                return False
            raise ValueError(f"not a boolean: {raw!r}")
        if hint is int:
            if isinstance(raw, bool):
                raise ValueError("boolean given")
            return int(raw)
        if hint is float:
            return float(raw)
        if hint is Path:
            return Path(os.path.expanduser(str(raw)))
        if origin is tuple:
            if isinstance(raw, str):
                return tuple(item.strip() for item in raw.split(",") if item.strip())
            return tuple(str(item) for item in raw)
        if hint is str or isinstance(hint, types.UnionType):
            return str(raw)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"setting {name}: {exc}") from exc
    return raw


def _flatten(table: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in table.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(_flatten(value, f"{name}_"))
        else:
            out[name] = value
    return out


def _read_secret_files(values: dict[str, Any]) -> None:
    for secret in SECRET_FIELDS:
        path = values.pop(f"{secret}_file", None)
        if path and not values.get(secret):
            try:
                values[secret] = Path(os.path.expanduser(str(path))).read_text().strip()
            except OSError as exc:
                raise ConfigError(f"setting {secret}_file: cannot read {path}: {exc}") from exc


def load_settings(
    config_file: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    **overrides: Any,
) -> Settings:
    """Build Settings from a TOML file, the environment and explicit overrides."""
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    # Elasticsearch's own variable, honoured below the TOML file and DECRYPTSCOPE_ES_JAVA_HOME.
    if env.get("ES_JAVA_HOME"):
        values["es_java_home"] = env["ES_JAVA_HOME"]
    config_file = config_file or env.get(CONFIG_ENV)
    if config_file:
        try:
            with open(config_file, "rb") as fh:
                values.update(_flatten(tomllib.load(fh)))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"config file {config_file}: {exc}") from exc
    for key, raw in env.items():
        if key.startswith(ENV_PREFIX) and key != CONFIG_ENV:
            values[key[len(ENV_PREFIX) :].lower()] = raw
    values.update({k: v for k, v in overrides.items() if v is not None})
    _read_secret_files(values)
    unknown = sorted(set(values) - set(_FIELDS))
    if unknown:
        raise ConfigError(f"unknown setting(s): {', '.join(unknown)}")
    typed = {name: _coerce(name, raw) for name, raw in values.items()}
    settings = Settings(**typed)
    validate(settings)
    return settings


def validate(settings: Settings) -> None:
    """Refuse values that cannot work, naming the setting."""
    positive = (
        "batch_size",
        "batch_max_wait_s",
        "max_message_bytes",
        "max_connections",
        "idle_timeout_s",
        "ingest_buffer_bytes",
        "correlation_window_s",
        "correlation_max_entries",
        "alert_window_s",
        "alert_baseline_windows",
        "alert_min_count",
        "alert_ratio",
        "alert_sigma",
        "topic_partitions",
        "topic_replication",
        "alert_new_cause_min_count",
        "alert_cooldown_windows",
        "alert_max_servers",
        "spool_max_bytes",
        "recommend_min_failures",
        "recommend_min_clients",
        "recommend_review_days",
        "change_before_s",
        "change_after_s",
        "change_growth_factor",
        "change_min_failures",
        "certificate_warn_days",
    )
    for name in positive:
        if getattr(settings, name) <= 0:
            raise ConfigError(f"setting {name} must be > 0, got {getattr(settings, name)!r}")
    if not 6 <= settings.worker_session_timeout_s <= 1800:  # the broker's default bounds
        raise ConfigError(
            "setting worker_session_timeout_s must be in [6, 1800] seconds, "
            f"got {settings.worker_session_timeout_s!r}"
        )
    if settings.recommend_min_span_s < 0:
        raise ConfigError(
            f"setting recommend_min_span_s must be >= 0, got {settings.recommend_min_span_s!r}"
        )
    if settings.alert_grace_s < 0:
        raise ConfigError(f"setting alert_grace_s must be >= 0, got {settings.alert_grace_s!r}")
    if not 0 < settings.alert_ewma_alpha <= 1:
        raise ConfigError(
            f"setting alert_ewma_alpha must be in (0, 1], got {settings.alert_ewma_alpha!r}"
        )
    if settings.change_merge_s < 0:
        raise ConfigError(f"setting change_merge_s must be >= 0, got {settings.change_merge_s!r}")
    for name in ("forward_trust_ca_not_after", "forward_untrust_ca_not_after"):
        value = getattr(settings, name)
        if value:
            try:
                datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                raise ConfigError(f"setting {name} is not an ISO 8601 date: {value!r}") from None
    for name in ("topic_raw", "topic_events", "topic_alerts", "topic_dlq", "topic_events_ocsf"):
        topic = getattr(settings, name)
        if not _TOPIC_NAME.fullmatch(topic) or topic in (".", ".."):
            raise ConfigError(f"setting {name} is not a Kafka topic name: {topic!r}")
    if settings.ocsf_enabled:
        others = {settings.topic_raw, settings.topic_events, settings.topic_alerts}
        if settings.topic_events_ocsf in others | {settings.topic_dlq}:
            raise ConfigError(
                "setting topic_events_ocsf must differ from the other topics, "
                f"got {settings.topic_events_ocsf!r}"
            )
    for name in _FIELDS:
        if name.endswith("_port") and not 0 < getattr(settings, name) < 65536:
            raise ConfigError(f"setting {name} is not a TCP/UDP port: {getattr(settings, name)!r}")
