"""The Kafka side of ``decryptscope setup``: the pipeline's topics, created idempotently."""

from __future__ import annotations

import contextlib
from typing import Any

from pipeline import kafka_config, wire
from pipeline.errors import SinkError
from pipeline.settings import Settings

# Per-topic configuration: the raw topic keeps a week for replays, the DLQ a month for people.
_TOPIC_CONFIG = {
    "raw": {
        "retention.ms": str(7 * 24 * 3600 * 1000),
        "compression.type": "producer",
        "max.message.bytes": str(kafka_config.RAW_MAX_MESSAGE_BYTES),
    },
    "events": {"retention.ms": str(3 * 24 * 3600 * 1000), "compression.type": "producer"},
    "alerts": {"retention.ms": str(30 * 24 * 3600 * 1000)},
    "dlq": {"retention.ms": str(30 * 24 * 3600 * 1000)},
    # window counts matter for the minutes until their window is evaluated
    "failure_counts": {"retention.ms": str(3600 * 1000)},
}


def wanted_topics(settings: Settings) -> dict[str, dict[str, str]]:
    """Topic name -> configs, from the settings."""
    ocsf = {settings.topic_events_ocsf: _TOPIC_CONFIG["events"]} if settings.ocsf_enabled else {}
    return ocsf | {
        settings.topic_raw: _TOPIC_CONFIG["raw"],
        settings.topic_events: _TOPIC_CONFIG["events"],
        settings.topic_alerts: _TOPIC_CONFIG["alerts"],
        settings.topic_dlq: _TOPIC_CONFIG["dlq"],
        wire.failure_counts_topic(settings.worker_id): _TOPIC_CONFIG["failure_counts"],
    }


def admin_client(settings: Settings) -> Any:
    from kafka.admin import KafkaAdminClient
    from kafka.errors import KafkaError

    kafka_config.preflight(settings, "setup")
    try:
        return KafkaAdminClient(**kafka_config.admin_kwargs(settings))
    except KafkaError as exc:
        raise kafka_config.kafka_error(exc, settings, "setup") from exc


def _partitions(admin: Any, names: list[str]) -> dict[str, int]:
    if not names:
        return {}
    described = admin.describe_topics(names)
    return {
        t.get("name") or t.get("topic"): len(t.get("partitions") or [])
        for t in described
        if not t.get("error_code") and t.get("partitions")
    }


def setup_topics(settings: Settings) -> list[str]:
    """Create the missing topics; grow partitions that are fewer than configured."""
    from kafka.admin import NewPartitions, NewTopic
    from kafka.errors import KafkaError, TopicAlreadyExistsError

    admin = admin_client(settings)
    done: list[str] = []
    try:
        wanted = wanted_topics(settings)
        existing = set(admin.list_topics())
        new = [
            NewTopic(name, settings.topic_partitions, settings.topic_replication, topic_configs=cfg)
            for name, cfg in wanted.items()
            if name not in existing
        ]
        if new:
            # another setup may have raced us: fine
            with contextlib.suppress(TopicAlreadyExistsError):
                admin.create_topics(new, validate_only=False)
            done.extend(f"topic {t.name} ({settings.topic_partitions} partitions)" for t in new)
        counts = _partitions(admin, [n for n in wanted if n in existing])
        grow = {
            name: NewPartitions(settings.topic_partitions)
            for name, count in counts.items()
            if count < settings.topic_partitions
        }
        if grow:
            admin.create_partitions(grow)
            done.extend(f"topic {n}: partitions -> {settings.topic_partitions}" for n in grow)
    except KafkaError as exc:
        raise SinkError(f"creating topics: {exc}") from exc
    finally:
        admin.close()
    return done


def check_topics(settings: Settings) -> list[str]:
    """Missing topics and partition counts that differ from settings."""
    from kafka.errors import KafkaError

    admin = admin_client(settings)
    try:
        wanted = list(wanted_topics(settings))
        existing = set(admin.list_topics())
        drift = [f"topic {n}: missing" for n in wanted if n not in existing]
        counts = _partitions(admin, [n for n in wanted if n in existing])
        drift.extend(
            f"topic {n}: {c} partitions, settings say {settings.topic_partitions}"
            for n, c in counts.items()
            if c != settings.topic_partitions
        )
    except KafkaError as exc:
        raise SinkError(f"describing topics: {exc}") from exc
    finally:
        admin.close()
    return drift
