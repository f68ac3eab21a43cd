"""The Kafka side of ingest: publish syslog messages to ``panos.raw`` without blocking asyncio.

kafka-python's ``send()`` is synchronous (it may wait for metadata or take locks), so the
listeners never call it: they hand each message to ``Publisher.offer()``, which only appends to
an in-process queue and accounts its bytes. One sender thread moves the queue into the
producer. The byte account covers a message from ``offer()`` until Kafka acknowledged it, so
``ingest_buffer_bytes`` bounds everything ingest holds in memory. When the account is over the
limit ``full`` is true: TCP/TLS listeners pause reading (backpressure) and UDP drops (counted).
A send that fails after the producer's own retries is queued again: accepted data is never
dropped while the process runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pipeline import kafka_config
from pipeline.settings import Settings

_STOP = object()
# Header of a message ingest had to cut at max_message_bytes (value: the bytes kept).
CUT_HEADER = "cut"
_MAX_SERIAL = 32


def kafka_key(message: bytes, sender_ip: str) -> bytes:
    """The firewall serial without a full parse, else the sender's IP.

    In PAN-OS CSV the serial is the 3rd comma-separated field counted from the start of the
    message: the syslog header and FUTURE_USE ``1`` make field 1, receive_time field 2.
    """
    first = message.find(b",")
    if first > 0:
        second = message.find(b",", first + 1)
        if second > 0:
            third = message.find(b",", second + 1)
            if third > second + 1 and third - second - 1 <= _MAX_SERIAL:
                serial = message[second + 1 : third]
                if serial.isalnum():
                    return serial
    return sender_ip.encode()


@dataclass
class PublisherStats:
    """Plain counters, read by the metrics collector and by tests."""

    offered: int = 0
    published: int = 0
    send_errors: int = 0
    resent: int = 0


class Publisher:
    """Bounded, non-blocking hand-off from the event loop to a kafka-python producer."""

    def __init__(
        self,
        settings: Settings,
        *,
        producer_factory: Callable[[], Any] | None = None,
        topic: str | None = None,
    ) -> None:
        self.topic = topic or settings.topic_raw
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
        size = len(value) + len(key) + 64
        with self._lock:
            self._buffered += size
        self.stats.offered += 1
        headers = [("sender", sender.encode()), ("received_at", str(received_ms).encode())]
        if cut:
            headers.append((CUT_HEADER, str(len(value)).encode()))
        self._queue.put((value, key, headers, size, token))

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
        send = self._producer.send
        topic = self.topic
        while True:
            item = get()
            if item is _STOP:
                break
            value, key, headers, size, token = item
            try:
                future = send(topic, value=value, key=key, headers=headers)
            except Exception:
                self._failed(item)
                continue
            future.add_callback(self._sent, size, token)
            future.add_errback(self._send_failed, item)
        try:
            self._producer.flush(10)
        except Exception:
            self.stats.send_errors += 1

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

    def _send_failed(self, item: tuple, _exc: BaseException) -> None:
        self._failed(item)

    def _failed(self, item: tuple) -> None:
        # The producer already retried until delivery_timeout_ms: Kafka is away. Keep the
        # message (it stays in the byte account) and try again shortly.
        self.stats.send_errors += 1
        if self._closed:
            self._release(item[3])
            return
        self.stats.resent += 1
        timer = threading.Timer(1.0, self._queue.put, (item,))
        timer.daemon = True
        timer.start()


def make_producer(settings: Settings) -> Any:
    """An idempotent, acks=all, batching, compressing kafka-python producer."""
    from kafka import KafkaProducer

    return KafkaProducer(**producer_config(settings))


def producer_config(settings: Settings) -> dict[str, Any]:
    return kafka_config.producer_kwargs(settings)


def kafka_security(settings: Settings) -> dict[str, Any]:
    """Security options shared by every kafka-python client of the project."""
    return kafka_config.security_kwargs(settings)
