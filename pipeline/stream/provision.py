"""``decryptscope setup``: topics in Kafka, templates in Elasticsearch; ``--check`` for drift."""

from __future__ import annotations

import sys

from pipeline.settings import Settings
from pipeline.sinks import es_auth, es_setup
from pipeline.sinks.elasticsearch import make_client
from pipeline.stream import kafka_setup


def run(settings: Settings, *, check: bool = False, kafka: bool = True, es: bool = True) -> int:
    """Create what is missing (idempotent), or with ``check`` list the drift (exit 1 if any)."""
    client = make_client(settings, asynchronous=False) if es else None
    try:
        if client is not None:
            es_auth.preflight(client, settings, "setup")
        if check:
            drift = kafka_setup.check_topics(settings) if kafka else []
            if client is not None:
                drift += es_setup.check_elasticsearch(client, settings.index_prefix)
                if settings.alerts_index:
                    drift += es_setup.check_alerts(client, settings.alerts_index)
            for line in drift:
                print(f"drift: {line}")
            if not drift:
                print("no drift: topics and templates match the settings")
            return 1 if drift else 0
        done = kafka_setup.setup_topics(settings) if kafka else []
        if client is not None:
            done += es_setup.setup_elasticsearch(client, settings.index_prefix)
            if settings.alerts_index:
                done += es_setup.setup_alerts(client, settings.alerts_index)
        for line in done:
            print(f"ok: {line}")
        return 0
    finally:
        if client is not None:
            client.close()


def retention(settings: Settings, days: int, *, dry_run: bool = False) -> int:
    client = make_client(settings, asynchronous=False)
    try:
        names = es_setup.apply_retention(client, settings.index_prefix, days, dry_run=dry_run)
    finally:
        client.close()
    verb = "would delete" if dry_run else "deleted"
    for name in names:
        print(f"{verb}: {name}")
    if not names:
        print(f"no index of {settings.index_prefix} older than {days} days", file=sys.stderr)
    return 0
