"""What the ingest publisher does with a send error: kafka-python's retriable errors are retried,
permanent ones send the message to the dead-letter topic (after a try in a batch of its own),
and a dead letter the dead-letter topic refuses is counted as lost.

The producer here is a stand-in that answers like kafka-python's idempotent producer (this tests
the publisher's handling, not Kafka; tests/integration/test_publish_errors.py provokes the
same errors on the real broker)."""

from __future__ import annotations

import dataclasses

import orjson
import pytest
from kafka.errors import (
    ClusterAuthorizationFailedError,
    InvalidTopicError,
    KafkaConnectionError,
    KafkaError,
    KafkaTimeoutError,
    MessageSizeTooLargeError,
    NotEnoughReplicasError,
    NotLeaderForPartitionError,
    RequestTimedOutError,
    TopicAuthorizationFailedError,
)
from kafka.future import Future
from prometheus_client import CollectorRegistry

from pipeline.metrics import build_metrics
from pipeline.settings import Settings
from pipeline.syslog import publisher as publisher_mod
from pipeline.syslog.publisher import Publisher, is_retriable


@pytest.mark.parametrize(
    "exc",
    [
        KafkaTimeoutError("metadata"),
        NotLeaderForPartitionError(),
        RequestTimedOutError(),
        KafkaConnectionError("refused"),
        NotEnoughReplicasError(),
    ],
)
def test_errors_kafka_python_calls_retriable_are_retried(exc) -> None:
    assert is_retriable(exc)


@pytest.mark.parametrize(
    "exc",
    [
        MessageSizeTooLargeError(),
        TopicAuthorizationFailedError("panos.raw"),
        ClusterAuthorizationFailedError(),
        InvalidTopicError(),
        KafkaError("Cannot perform send because at least one previous request has failed"),
        TypeError("value must be bytes"),
    ],
)
def test_other_errors_are_permanent(exc) -> None:
    assert not is_retriable(exc)


class StandInProducer:
    """Fails what ``refuse(topic, value, attempt)`` says; after a permanent failure it
    refuses every later send, as kafka-python's idempotent producer does."""

    def __init__(self, refuse, sent: list[tuple[str, bytes]], attempts: dict) -> None:
        self.refuse = refuse
        self.sent = sent
        self.attempts = attempts
        self.broken: BaseException | None = None
        self.closed = False

    def send(self, topic: str, value: bytes, key: bytes, headers: list) -> Future:
        if self.broken is not None:
            raise KafkaError("Cannot perform send because a previous request failed")
        n = self.attempts[value] = self.attempts.get(value, 0) + 1
        error = self.refuse(topic, value, n)
        future = Future()
        if error is None:
            self.sent.append((topic, value))
            return future.success(None)
        if not is_retriable(error):
            self.broken = error
        return future.failure(error)

    def flush(self, timeout: float | None = None) -> None:
        return None

    def close(self, timeout: float | None = None) -> None:
        self.closed = True


@pytest.fixture
def make(monkeypatch):
    monkeypatch.setattr(publisher_mod, "RETRY_S", 0.01)

    def build(refuse):
        sent: list[tuple[str, bytes]] = []
        producers: list[StandInProducer] = []
        attempts: dict[bytes, int] = {}

        def factory() -> StandInProducer:
            producers.append(StandInProducer(refuse, sent, attempts))
            return producers[-1]

        settings = dataclasses.replace(Settings(), topic_raw="raw", topic_dlq="dlq")
        metrics = build_metrics(CollectorRegistry())
        publisher = Publisher(settings, producer_factory=factory, metrics=metrics)
        return publisher, sent, producers, metrics

    return build


async def run(publisher: Publisher, values: list[bytes]) -> None:
    publisher.start()
    for value in values:
        publisher.offer(value, b"k", "192.0.2.1:514", 1)
    assert await publisher.drain(10)
    assert await publisher.close(10)


def counter(metrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(f"decryptscope_{name}_total", labels) or 0.0


BIG = b"too big for the topic"


def too_big(topic: str, value: bytes, _attempt: int) -> BaseException | None:
    return MessageSizeTooLargeError() if value == BIG else None


async def test_a_retriable_error_is_retried_until_kafka_takes_the_message(make) -> None:
    def twice_away(_topic, value, attempt):
        return KafkaTimeoutError("broker away") if value == b"m1" and attempt <= 2 else None

    publisher, sent, producers, metrics = make(twice_away)
    await run(publisher, [b"m0", b"m1", b"m2"])
    assert sorted(sent) == [("raw", b"m0"), ("raw", b"m1"), ("raw", b"m2")]
    assert publisher.stats.resent == 2
    assert len(producers) == 1
    assert counter(metrics, "dead_letters", stage="publish", error_type="sink") == 0


async def test_a_permanent_error_dead_letters_only_the_message_that_caused_it(make, capsys) -> None:
    publisher, sent, producers, metrics = make(too_big)
    await run(publisher, [b"m0", BIG, b"m1", b"m2"])
    raw = sorted(value for topic, value in sent if topic == "raw")
    assert raw == [b"m0", b"m1", b"m2"]  # m1, m2 failed with it, then went through alone
    [letter] = [orjson.loads(value) for topic, value in sent if topic == "dlq"]
    assert letter["original"] == BIG.decode()
    assert (letter["stage"], letter["error_type"], letter["topic"]) == ("publish", "sink", "raw")
    assert "MessageSizeTooLargeError" in letter["message"]
    assert counter(metrics, "dead_letters", stage="publish", error_type="sink") == 1
    assert publisher.stats.dead_lettered == 1
    assert len(producers) > 1 and all(p.closed for p in producers)
    assert publisher.buffered == 0
    [line] = capsys.readouterr().err.splitlines()
    assert "Kafka refused the message for topic raw" in line
    assert "sending it to dlq" in line


async def test_a_dead_letter_the_dlq_refuses_for_good_is_counted_as_lost(make, capsys) -> None:
    def everything_big(topic, value, _attempt):
        return MessageSizeTooLargeError() if value == BIG or topic == "dlq" else None

    publisher, sent, _producers, metrics = make(everything_big)
    await run(publisher, [BIG, b"m0"])
    assert sent == [("raw", b"m0")]
    assert counter(metrics, "dead_letter_failures", stage="publish") == 1
    assert counter(metrics, "dead_letters", stage="publish", error_type="sink") == 0
    assert (publisher.stats.dead_lettered, publisher.stats.lost) == (0, 1)
    assert publisher.buffered == 0
    assert "the dead-letter topic dlq refused a message too" in capsys.readouterr().err


async def test_one_line_per_kind_of_failure_however_many_messages(make, capsys) -> None:
    publisher, sent, _producers, metrics = make(too_big)
    await run(publisher, [BIG] * 5)
    assert len([value for topic, value in sent if topic == "dlq"]) == 5
    assert counter(metrics, "dead_letters", stage="publish", error_type="sink") == 5
    assert len(capsys.readouterr().err.splitlines()) == 1
