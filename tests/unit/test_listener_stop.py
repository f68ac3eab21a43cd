"""Stopping the syslog listeners while a sender is mid-stream: a sender that checks for the
server's FIN before each write (as rsyslog's omfwd does) loses nothing, and one that never
stops is cut off after the grace period. No Kafka: the publisher is a list."""

from __future__ import annotations

import asyncio
import dataclasses
import socket
import threading
import time

from prometheus_client import CollectorRegistry

from pipeline.metrics import build_metrics
from pipeline.settings import Settings
from pipeline.syslog.listeners import SyslogServer


class ListPublisher:
    """What the listeners need of a publisher: never full, remembers what it was offered."""

    full = False

    def __init__(self) -> None:
        self.offered: list[bytes] = []

    def offer(self, value: bytes, key: bytes, sender: str, received_ms: int, **_kw) -> None:
        self.offered.append(value)

    def offer_many(self, messages: list[tuple[bytes, bytes, bool]], *_args, **_kw) -> None:
        self.offered.extend(value for value, _key, _cut in messages)

    def when_room(self, callback) -> None:
        callback()


def _server() -> tuple[SyslogServer, ListPublisher]:
    settings = dataclasses.replace(
        Settings(), syslog_bind="127.0.0.1", syslog_udp_port=0, syslog_tcp_port=0
    )
    publisher = ListPublisher()
    metrics = build_metrics(CollectorRegistry())
    return SyslogServer(settings, publisher, metrics), publisher  # type: ignore[arg-type]


def _peer_closed(sock: socket.socket) -> bool:
    """rsyslog's check before a write: a zero-byte peek means the peer sent FIN."""
    try:
        return sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except BlockingIOError:
        return False


class Sender(threading.Thread):
    """Writes numbered octet-counted messages every millisecond until told to stop, or (when
    ``honours_fin``) until it sees the server's FIN; ``sent`` lists what it wrote."""

    def __init__(self, port: int, honours_fin: bool) -> None:
        super().__init__(daemon=True)
        self.port, self.honours_fin = port, honours_fin
        self.sent: list[bytes] = []
        self.saw_fin = False
        self.halt = threading.Event()

    def run(self) -> None:
        with socket.create_connection(("127.0.0.1", self.port)) as sock:
            n = 0
            while not self.halt.is_set():
                if self.honours_fin and _peer_closed(sock):
                    self.saw_fin = True
                    return
                message = b"<14>Nov 20 10:15:02 fw 1,2026/11/20 10:15:02,0128,TRAFFIC,n=%d" % n
                try:
                    sock.sendall(b"%d %s" % (len(message), message))
                except OSError:
                    return
                self.sent.append(message)
                n += 1
                time.sleep(0.001)


async def _stop_mid_stream(honours_fin: bool, **stop_args) -> tuple[Sender, list[bytes], float]:
    server, publisher = _server()
    await server.start(udp=False, tls=False)
    sender = Sender(server.addresses["tcp"][1], honours_fin)
    sender.start()
    while len(publisher.offered) < 200:
        await asyncio.sleep(0.01)
    started = time.monotonic()
    await server.stop(**stop_args)
    took = time.monotonic() - started
    sender.halt.set()
    await asyncio.to_thread(sender.join, 10)
    return sender, publisher.offered, took


def test_a_sender_that_honours_fin_loses_nothing_when_the_server_stops() -> None:
    sender, offered, took = asyncio.run(_stop_mid_stream(True, quiet_s=1.0, grace_s=10.0))
    assert sender.saw_fin
    assert offered == sender.sent
    assert took < 5.0


def test_a_sender_that_never_stops_is_cut_off_after_the_grace_period() -> None:
    sender, offered, took = asyncio.run(_stop_mid_stream(False, quiet_s=1.0, grace_s=2.0))
    assert 2.0 <= took < 4.0
    # what was read is published in order; the rest of the stream was refused
    assert offered == sender.sent[: len(offered)]
    assert len(offered) < len(sender.sent) or not sender.is_alive()
