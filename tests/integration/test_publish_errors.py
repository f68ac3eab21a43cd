"""The ingest publisher against the real Kafka when the broker refuses a message for good: a
message larger than its topic's ``max.message.bytes`` goes to the dead-letter topic with the
reason and is counted, the messages after it are still published, and a dead letter that the
dead-letter topic refuses too is counted as lost."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import os

import orjson
import pytest
from kafka import KafkaConsumer
from kafka.admin import KafkaAdminClient, NewTopic
from prometheus_client import CollectorRegistry

from pipeline.metrics import build_metrics
from pipeline.syslog.publisher import Publisher

pytestmark = pytest.mark.integration

LIMIT = 2048  # max.message.bytes of the test topics (the producer's max_request_size is 1 MiB)


def small(n: int) -> bytes:
    return b"<14>Nov 20 10:00:00 fw-1 small message %d" % n


def big() -> bytes:
    """A syslog line well over LIMIT even compressed (random text does not compress)."""
    return b"<14>Nov 20 10:00:00 fw-1 " + base64.b64encode(os.urandom(6000))


@pytest.fixture
def topics(settings, run_prefix, request) -> tuple[str, str]:
    base = f"{run_prefix}.{request.node.name[5:35]}"
    raw, dlq = f"{base}.raw", f"{base}.dlq"
    # the second test's dead-letter topic refuses the dead letter as well
    dlq_limit = LIMIT if "refuses" in request.node.name else 1024 * 1024
    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    admin.create_topics(
        [
            NewTopic(raw, 1, 1, topic_configs={"max.message.bytes": str(LIMIT)}),
            NewTopic(dlq, 1, 1, topic_configs={"max.message.bytes": str(dlq_limit)}),
        ]
    )
    admin.close()
    return raw, dlq


def consume(settings, topic: str) -> list:
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=settings.kafka_bootstrap,
        auto_offset_reset="earliest",
        consumer_timeout_ms=5000,
    )
    try:
        return list(consumer)
    finally:
        consumer.close()


async def publish(publisher: Publisher, values: list[bytes]) -> None:
    for value in values:
        publisher.offer(value, b"fw-1", "127.0.0.1:514", 1_790_000_000_000)
    assert await publisher.drain(120)


def sample(metrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(f"decryptscope_{name}_total", labels) or 0.0


async def test_a_message_too_large_for_its_topic_is_dead_lettered_and_later_ones_published(
    settings, topics, capfd
) -> None:
    raw, dlq = topics
    s = dataclasses.replace(settings, topic_raw=raw, topic_dlq=dlq)
    metrics = build_metrics(CollectorRegistry())
    publisher = Publisher(s, metrics=metrics)
    await asyncio.to_thread(publisher.start_producer)
    publisher.start()
    oversized = big()
    try:
        # one batch: the small messages share the producer with the one Kafka refuses
        await publish(publisher, [small(1), oversized, small(2)])
        await publish(publisher, [small(n) for n in range(3, 10)])
    finally:
        assert await publisher.close(30)
    assert sorted(m.value for m in consume(s, raw)) == sorted(small(n) for n in range(1, 10))
    [letter] = [orjson.loads(m.value) for m in consume(s, dlq)]
    assert letter["original"] == oversized.decode()
    assert (letter["stage"], letter["error_type"], letter["topic"]) == ("publish", "sink", raw)
    assert "MessageSizeTooLargeError" in letter["message"]
    assert sample(metrics, "dead_letters", stage="publish", error_type="sink") == 1
    assert sample(metrics, "dead_letter_failures", stage="publish") == 0
    assert (publisher.stats.dead_lettered, publisher.stats.lost) == (1, 0)
    assert publisher.buffered == 0
    err = capfd.readouterr().err
    assert f"Kafka refused the message for topic {raw}" in err
    assert f"sending it to {dlq}" in err


async def test_a_dead_letter_the_dlq_refuses_is_counted_as_lost(settings, topics, capfd) -> None:
    raw, dlq = topics
    s = dataclasses.replace(settings, topic_raw=raw, topic_dlq=dlq)
    metrics = build_metrics(CollectorRegistry())
    publisher = Publisher(s, metrics=metrics)
    await asyncio.to_thread(publisher.start_producer)
    publisher.start()
    try:
        await publish(publisher, [big()])
        await publish(publisher, [small(1)])
    finally:
        assert await publisher.close(30)
    assert [m.value for m in consume(s, raw)] == [small(1)]
    assert consume(s, dlq) == []
    assert sample(metrics, "dead_letter_failures", stage="publish") == 1
    assert sample(metrics, "dead_letters", stage="publish", error_type="sink") == 0
    assert (publisher.stats.dead_lettered, publisher.stats.lost) == (0, 1)
    assert f"the dead-letter topic {dlq} refused a message too" in capfd.readouterr().err
