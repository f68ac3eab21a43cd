"""The Kafka side of ingest: publish syslog messages to ``panos.raw`` without blocking asyncio.

kafka-python's ``send()`` is synchronous (it may wait for metadata or take locks), so the
listeners never call it: they hand each message to ``Publisher.offer()``, which only appends to
an in-process queue and accounts its bytes. One sender thread moves the queue into the
producer. The byte account covers a message from ``offer()`` until Kafka acknowledged it, so
``ingest_buffer_bytes`` bounds everything ingest holds in memory. When the account is over the
limit ``full`` is true: TCP/TLS listeners pause reading (backpressure) and UDP drops (counted).

A send that fails with an error kafka-python calls retriable (``KafkaError.retriable``: broker
away, leader moving, timeouts), after the producer's own retries, is queued again: accepted
data is never dropped while the process runs. Any other error is permanent for that message
(too large for the topic, not authorized, invalid topic). Other messages may fail with it
through no fault of their own (an idempotent kafka-python producer refuses every send after
one permanent failure), so the producer is replaced and the message is sent again in a batch of
its own: if it fails for good there too, it goes to the dead-letter topic with the reason and
is counted (``decryptscope_dead_letters_total{stage="publish"}``). A dead letter the dead-letter
topic refuses for good is logged and counted (``decryptscope_dead_letter_failures_total``).
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kafka.errors import KafkaError

from pipeline import kafka_config, wire
from pipeline.errors import SinkError
from pipeline.metrics import METRICS, Metrics, observe_dead_letter, observe_dead_letter_failure
from pipeline.settings import Settings

_STOP = object()
# Queue entries: a list of messages (value, key, headers, size, token), or:
_ALONE = object()  # (_ALONE, message): send it in a batch of its own (after a permanent error)
_DEAD = object()  # (_DEAD, message, dead letter): send the dead letter to the dead-letter topic
STAGE = "publish"
RETRY_S = 1.0
FLUSH_S = 10.0
# At most one line per kind of permanent failure in this many seconds (a topic that refuses
# every message must not flood the log).
SAY_EVERY_S = 60.0


def is_retriable(exc: BaseException) -> bool:
    """kafka-python's own verdict on a send error: can a later attempt succeed?

    Its error classes carry ``retriable``; anything that is not a ``KafkaError`` (a bad
    argument, a serializer error) fails the same way every time."""
    return isinstance(exc, KafkaError) and bool(exc.retriable)


@dataclass
class PublisherStats:
    """Plain counters, read by the metrics collector and by tests."""

    offered: int = 0
    published: int = 0
    send_errors: int = 0
    resent: int = 0
    dead_lettered: int = 0
    lost: int = 0  # refused by the dead-letter topic too


class Publisher:
    """Bounded, non-blocking hand-off from the event loop to a kafka-python producer."""

    def __init__(
        self,
        settings: Settings,
        *,
        producer_factory: Callable[[], Any] | None = None,
        topic: str | None = None,
        metrics: Metrics = METRICS,
    ) -> None:
        self.topic = topic or settings.topic_raw
        self.dlq_topic = settings.topic_dlq
        self.metrics = metrics
        self.limit = settings.ingest_buffer_bytes
        self.low_water = settings.ingest_buffer_bytes // 2
        self.stats = PublisherStats()
        self._buffered = 0
        self._lock = threading.Lock()
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._factory = producer_factory or (lambda: make_producer(settings))
        self._producer: Any = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._room_waiters: list[Callable[[], None]] = []
        self._closed = False
        self._renew = False  # the producer may be broken by a permanent failure
        self._said: dict[str, tuple[float, int]] = {}
        # Called with an offer's ``token`` once Kafka acknowledged it (the disk spool).
        self.on_acked: Callable[[Any], None] | None = None

    # --- the event-loop side ----------------------------------------------------------------
    @property
    def buffered(self) -> int:
        return self._buffered

    @property
    def full(self) -> bool:
        return self._buffered >= self.limit

    def start_producer(self) -> None:
        """Create the producer (blocks while it bootstraps: call it off the loop)."""
        if self._producer is None:
            self._producer = self._factory()

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.start_producer()
        self._thread = threading.Thread(target=self._run, name="ingest-kafka", daemon=True)
        self._thread.start()

    def offer(
        self,
        value: bytes,
        key: bytes,
        sender: str,
        received_ms: int,
        *,
        cut: bool = False,
        token: Any = None,
    ) -> None:
        """Accept one message; never blocks, never refuses (callers check ``full`` first).

        ``cut``: the message was longer than ``max_message_bytes`` and is only its start; a
        header says so and the worker dead-letters it instead of parsing a fragment."""
        tokens = None if token is None else [token]
        self.offer_many([(value, key, cut)], sender, received_ms, tokens)

    def offer_many(
        self,
        messages: list[tuple[bytes, bytes, bool]],
        sender: str,
        received_ms: int,
        tokens: list[Any] | None = None,
    ) -> None:
        """Accept (value, key, cut) messages that arrived together from one sender: one lock,
        one queue entry and one set of headers for all of them."""
        if not messages:
            return
        headers = [
            (wire.SENDER_HEADER, sender.encode()),
            (wire.RECEIVED_HEADER, str(received_ms).encode()),
        ]
        entries = []
        total = 0
        for i, (value, key, cut) in enumerate(messages):
            size = len(value) + len(key) + 64
            total += size
            mine = headers
            if cut:
                mine = [*headers, (wire.CUT_HEADER, str(len(value)).encode())]
            entries.append((value, key, mine, size, None if tokens is None else tokens[i]))
        with self._lock:
            self._buffered += total
        self.stats.offered += len(entries)
        self._queue.put(entries)

    def when_room(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` (on the loop) once the buffer is below its low-water mark."""
        if self._buffered < self.low_water:
            callback()
        else:
            self._room_waiters.append(callback)

    async def drain(self, timeout: float) -> bool:
        """Wait until everything offered is acknowledged by Kafka (or ``timeout``)."""
        deadline = time.monotonic() + timeout
        while self._buffered > 0 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        return self._buffered == 0

    async def close(self, timeout: float = 30.0) -> bool:
        """Flush what is buffered, then stop the thread and the producer."""
        drained = await self.drain(timeout)
        self._closed = True
        self._queue.put(_STOP)
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, timeout)
        if self._producer is not None:
            await asyncio.to_thread(self._producer.close, 10)
        return drained

    def _wake_waiters(self) -> None:
        if self._buffered >= self.low_water:
            return
        waiters, self._room_waiters = self._room_waiters, []
        for callback in waiters:
            callback()

    # --- the sender thread ------------------------------------------------------------------
    def _run(self) -> None:
        get = self._queue.get
        topic = self.topic
        while True:
            item = get()
            if item is _STOP:
                break
            if self._renew:
                self._renew_producer()
            if item[0] is _ALONE:
                self._send_alone(item)
                continue
            if item[0] is _DEAD:
                self._send_dead_letter(item)
                continue
            send = self._producer.send
            for entry in item:
                value, key, headers, size, token = entry
                try:
                    future = send(topic, value=value, key=key, headers=headers)
                except Exception as exc:
                    self._failed(entry, exc)
                    continue
                future.add_callback(self._sent, size, token)
                future.add_errback(self._failed, entry)
        try:
            self._producer.flush(FLUSH_S)
        except Exception:
            self.stats.send_errors += 1

    def _renew_producer(self) -> None:
        """A new producer: kafka-python's idempotent producer refuses every send after one
        permanent failure. Closing the old one fails what it still held back to ``_failed``."""
        old = self._producer
        with contextlib.suppress(Exception):
            old.close(FLUSH_S)
        self._renew = False
        while not self._closed:
            try:
                self._producer = self._factory()
                return
            except Exception as exc:
                self._say("producer", f"cannot create a Kafka producer ({exc}); retrying")
                time.sleep(RETRY_S)

    def _send_alone(self, entry: tuple) -> None:
        """Send one message with nothing else in its batch, so that its outcome is its own."""
        value, key, headers, size, token = entry[1]
        try:
            self._producer.flush(FLUSH_S)
            if self._renew:
                self._renew_producer()
            future = self._producer.send(self.topic, value=value, key=key, headers=headers)
            self._producer.flush(FLUSH_S)
        except Exception as exc:
            self._failed(entry, exc)
            return
        future.add_callback(self._sent, size, token)
        future.add_errback(self._failed, entry)

    def _send_dead_letter(self, entry: tuple) -> None:
        _tag, (_value, key, headers, _size, _token), letter = entry
        try:
            future = self._producer.send(self.dlq_topic, value=letter, key=key, headers=headers)
        except Exception as exc:
            self._dead_letter_failed(entry, exc)
            return
        future.add_callback(self._dead_lettered, entry)
        future.add_errback(self._dead_letter_failed, entry)

    def _release(self, size: int) -> None:
        with self._lock:
            self._buffered -= size
            crossed = self._buffered < self.low_water
        if crossed and self._room_waiters and self._loop is not None:
            # RuntimeError: the loop is already closed at shutdown
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._wake_waiters)

    def _sent(self, size: int, token: Any, _metadata: Any) -> None:
        if token is not None and self.on_acked is not None:
            self.on_acked(token)
        self.stats.published += 1
        self._release(size)

    def _failed(self, entry: tuple, exc: BaseException) -> None:
        """A message (``entry``: as queued, or tagged ``_ALONE``) that Kafka did not take."""
        alone = entry[0] is _ALONE
        message = entry[1] if alone else entry
        if self._retried_or_closing(entry, message, exc):
            return
        if not alone:
            self._queue.put((_ALONE, message))
            return
        reason = f"Kafka refused the message for topic {self.topic}: {_describe(exc)}"
        letter = wire.from_error(message[0], SinkError(reason), stage=STAGE, topic=self.topic)
        self._say(type(exc).__name__, f"{reason}; sending it to {self.dlq_topic}")
        self._queue.put((_DEAD, message, wire.encode_dead_letter(letter)))

    def _retried_or_closing(self, entry: tuple, message: tuple, exc: BaseException) -> bool:
        """Count a send error; True when that is all there is to do: the publisher is closing
        (the message is let go) or the error is retriable (the producer already retried until
        delivery_timeout_ms, so Kafka is away: the entry stays in the byte account and is
        queued again shortly). False for a permanent error, after which the producer is
        renewed before the next send."""
        self.stats.send_errors += 1
        if self._closed:
            self._release(message[3])
            return True
        if is_retriable(exc):
            self._retry_later(entry)
            return True
        self._renew = True
        return False

    def _dead_lettered(self, entry: tuple, _metadata: Any) -> None:
        _tag, message, _letter = entry
        observe_dead_letter(self.metrics, STAGE, SinkError.error_type)
        self.stats.dead_lettered += 1
        if message[4] is not None and self.on_acked is not None:
            self.on_acked(message[4])
        self._release(message[3])

    def _dead_letter_failed(self, entry: tuple, exc: BaseException) -> None:
        message = entry[1]
        if self._retried_or_closing(entry, message, exc):
            return
        observe_dead_letter_failure(self.metrics, STAGE)
        self.stats.lost += 1
        self._say(
            f"dlq:{type(exc).__name__}",
            f"the dead-letter topic {self.dlq_topic} refused a message too "
            f"({_describe(exc)}); {len(message[0])} bytes lost",
        )
        self._release(message[3])

    def _retry_later(self, entry: tuple) -> None:
        self.stats.resent += 1
        again = entry if entry[0] is _ALONE or entry[0] is _DEAD else [entry]
        timer = threading.Timer(RETRY_S, self._queue.put, (again,))
        timer.daemon = True
        timer.start()

    def _say(self, kind: str, text: str) -> None:
        """One line on stderr, at most one per ``kind`` every ``SAY_EVERY_S``."""
        now = time.monotonic()
        last, quiet = self._said.get(kind, (-SAY_EVERY_S, 0))
        if now - last < SAY_EVERY_S:
            self._said[kind] = (last, quiet + 1)
            return
        more = f" ({quiet} more like it since the last line)" if quiet else ""
        self._said[kind] = (now, 0)
        print(f"decryptscope ingest: {text}{more}", file=sys.stderr, flush=True)


def _describe(exc: BaseException) -> str:
    text = str(exc)
    name = type(exc).__name__
    return text if name in text else f"{name}: {text}"


def make_producer(settings: Settings) -> Any:
    """An idempotent, acks=all, batching, compressing kafka-python producer."""
    from kafka import KafkaProducer

    return KafkaProducer(**kafka_config.producer_kwargs(settings))
