"""``decryptscope demo``: the whole pipeline on the local stack, on bundled sample traffic.

Brings the stack up, runs setup, starts ``ingest`` and a ``worker`` as child processes,
replays ``deploy/demo/sample-traffic.log`` (one session per cause of the catalogue, some
sessions that are not failures, two destinations at the exclusion gate, two lines that are not
PAN-OS logs) with its timestamps moved to now, keeping their spacing; waits until every message
is indexed or dead-lettered, prints the diagnosis summary from an Elasticsearch aggregation and
the recommendations from the indexed events (``decryptscope recommend --from-es``).
``--keep`` leaves ingest and the worker running; otherwise they are stopped (the stack stays
up: ``stack down`` stops it).
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import timedelta
from typing import Any

from kafka import KafkaConsumer, TopicPartition

from pipeline import kafka_config, stack
from pipeline.commands import recommend, replay
from pipeline.commands.processes import Services
from pipeline.commands.setup import setup
from pipeline.resources import DEPLOY
from pipeline.settings import Settings
from pipeline.sinks.elasticsearch import make_client
from pipeline.stack.layout import COMPONENTS

SAMPLE = DEPLOY / "demo" / "sample-traffic.log"
# The documents of the replayed lines: not the change points' own (decryptscope.change), which
# the worker adds beside the lines that show a change.
LOG_DOCUMENTS = {"bool": {"must_not": [{"term": {"event.dataset": "decryptscope.change"}}]}}
# The window the recommendations are read from: the replayed traffic spans about an hour.
RECOMMEND_SINCE = timedelta(hours=24)


SUMMARY_AGGS = {
    "causes": {
        "terms": {"field": "decryptscope.cause", "size": 100},
        "aggs": {
            "example": {
                "top_hits": {
                    "size": 1,
                    "_source": [
                        "decryptscope.category",
                        "decryptscope.mode",
                        "decryptscope.remediation",
                    ],
                }
            }
        },
    }
}


def summary(client: Any, index: str) -> list[dict[str, Any]]:
    """Causes with counts, category, mode and remediation, from one aggregation."""
    result = client.search(
        index=index, size=0, query={"term": {"decryptscope.failure": True}}, aggs=SUMMARY_AGGS
    )
    rows = []
    for bucket in result["aggregations"]["causes"]["buckets"]:
        hit = bucket["example"]["hits"]["hits"][0]["_source"]["decryptscope"]
        rows.append(
            {
                "cause": bucket["key"],
                "count": bucket["doc_count"],
                "category": hit.get("category", ""),
                "mode": hit.get("mode", ""),
                "remediation": hit.get("remediation", ""),
            }
        )
    return rows


def print_summary(rows: list[dict[str, Any]], total: int, settings: Settings) -> None:
    print(f"\n{total} events indexed in {settings.index_prefix}; decryption failures by cause:\n")
    for row in rows:
        print(f"  {row['count']:>4}  {row['cause']}  [{row['category']}, {row['mode']}]")
        remedy = " ".join(str(row["remediation"]).split())
        print(f"        fix: {remedy[:300]}{'...' if len(remedy) > 300 else ''}")
    print(
        "\nThe events in Elasticsearch:\n"
        f"  curl -s '{settings.es_url}/{settings.index_prefix}/_search?pretty' "
        "-H 'content-type: application/json' -d "
        '\'{"query": {"term": {"decryptscope.failure": true}}, '
        '"sort": [{"@timestamp": "desc"}]}\''
    )
    print(
        f"Metrics: worker http://{settings.web_bind}:{settings.web_port}/metrics, "
        f"ingest http://127.0.0.1:{settings.ingest_metrics_port}/metrics"
    )


def print_recommendations(settings: Settings) -> None:
    """What ``decryptscope recommend --from-es --since 24h`` prints."""
    print("\n== recommendations: decryptscope recommend --from-es --since 24h\n", flush=True)
    section = recommend.from_es(settings, RECOMMEND_SINCE)
    sys.stdout.write(recommend.render(section, "text"))


def dead_letter_count(settings: Settings) -> int:
    """Messages on the dead-letter topic so far (the sum of its partitions' end offsets)."""
    consumer = KafkaConsumer(**kafka_config.consumer_kwargs(settings))
    try:
        partitions = consumer.partitions_for_topic(settings.topic_dlq) or set()
        topics = [TopicPartition(settings.topic_dlq, p) for p in partitions]
        return sum(consumer.end_offsets(topics).values()) if topics else 0
    finally:
        consumer.close()


def wait_until_done(
    client: Any, settings: Settings, sent: int, dead_before: int, timeout: float
) -> tuple[int, int]:
    """Poll until every message sent is indexed or dead-lettered; (indexed, dead-lettered)."""
    deadline = time.monotonic() + timeout
    indexed = dead = 0
    from elasticsearch import NotFoundError

    while time.monotonic() < deadline:
        try:
            client.indices.refresh(index=settings.index_prefix)
            indexed = client.count(index=settings.index_prefix, query=LOG_DOCUMENTS)["count"]
        except NotFoundError:  # a fresh prefix: no index until the worker's first bulk request
            indexed = 0
        dead = dead_letter_count(settings) - dead_before
        if indexed + dead >= sent:
            break
        time.sleep(0.5)
    return indexed, dead


def main(settings: Settings, *, keep: bool = False) -> int:
    print("== the local stack", flush=True)
    stack.up(settings, list(COMPONENTS))
    print("== setup: topics and index templates", flush=True)
    setup(settings)
    log_dir = settings.cache_dir / "demo"
    services = Services(settings, log_dir)
    print(f"== ingest and worker (logs in {log_dir})", flush=True)
    services.start()
    client = make_client(settings, asynchronous=False)
    try:
        dead_before = dead_letter_count(settings)
        lines = replay.read_lines([SAMPLE])
        messages = replay.prepare(lines, now=True, keep_offsets=True)
        print(f"== replaying {len(messages)} syslog messages over TCP", flush=True)
        target = replay.Target("tcp", settings.syslog_bind, settings.syslog_tcp_port)
        replay.replay(messages, target)
        indexed, dead = wait_until_done(client, settings, len(messages), dead_before, 180)
        services.check_alive()
        if indexed + dead < len(messages):
            print(
                f"only {indexed} indexed and {dead} dead-lettered of {len(messages)} after 180 s",
                file=sys.stderr,
            )
        print_summary(summary(client, settings.index_prefix), indexed, settings)
        print(f"{dead} messages went to the dead-letter topic {settings.topic_dlq}")
        print_recommendations(settings)
    finally:
        client.close()
        if keep:
            pids = ", ".join(f"{n} pid {p.pid}" for n, p in services.procs.items())
            print(f"\nStill running ({pids}); stop them with kill -TERM <pid>.")
        else:
            services.stop()
    return 0


def run(args: argparse.Namespace, settings: Settings) -> int:
    return main(settings, keep=args.keep)
