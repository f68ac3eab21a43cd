"""``decryptscope setup``: topics in Kafka, templates in Elasticsearch; ``--check`` for drift.
``decryptscope retention``: delete daily indices older than N days."""

from __future__ import annotations

import argparse
import sys

from pipeline.settings import Settings
from pipeline.sinks import es_auth, es_templates, kafka_topics
from pipeline.sinks.elasticsearch import make_client


def setup(settings: Settings, *, check: bool = False, kafka: bool = True, es: bool = True) -> int:
    """Create what is missing (idempotent), or with ``check`` list the drift (exit 1 if any)."""
    client = make_client(settings, asynchronous=False) if es else None
    try:
        if client is not None:
            es_auth.preflight(client, settings, "setup")
        if check:
            drift = kafka_topics.check_topics(settings) if kafka else []
            if client is not None:
                drift += es_templates.check_elasticsearch(client, settings.index_prefix)
                if settings.alerts_index:
                    drift += es_templates.check_alerts(client, settings.alerts_index)
            for line in drift:
                print(f"drift: {line}")
            if not drift:
                print("no drift: topics and templates match the settings")
            return 1 if drift else 0
        done = kafka_topics.setup_topics(settings) if kafka else []
        if client is not None:
            done += es_templates.setup_elasticsearch(client, settings.index_prefix)
            if settings.alerts_index:
                done += es_templates.setup_alerts(client, settings.alerts_index)
        for line in done:
            print(f"ok: {line}")
        return 0
    finally:
        if client is not None:
            client.close()


def retention(settings: Settings, days: int, *, dry_run: bool = False) -> int:
    """Delete (``dry_run``: list) the daily event indices older than ``days``."""
    client = make_client(settings, asynchronous=False)
    try:
        names = es_templates.apply_retention(client, settings.index_prefix, days, dry_run=dry_run)
    finally:
        client.close()
    verb = "would delete" if dry_run else "deleted"
    for name in names:
        print(f"{verb}: {name}")
    if not names:
        print(f"no index of {settings.index_prefix} older than {days} days", file=sys.stderr)
    return 0


def run(args: argparse.Namespace, settings: Settings) -> int:
    return setup(settings, check=args.check)


def run_retention(args: argparse.Namespace, settings: Settings) -> int:
    return retention(settings, args.days, dry_run=args.dry_run)
