"""The syslog listeners: asyncio UDP, TCP and TLS (RFC 5425) servers feeding a Publisher.

Each message goes to Kafka unchanged. TCP and TLS connections are cut into messages by
``StreamFramer`` (newline or octet counting, detected per connection). When the publisher's
buffer is full, stream connections stop reading (the sender's TCP window closes: backpressure)
and UDP datagrams are dropped and counted: UDP has no way to push back.

Stopping loses nothing a sender could still resend: plain syslog over TCP has no
acknowledgement, so bytes the kernel accepted but the server never read would be gone without
the sender knowing. ``stop()`` therefore first half-closes each stream connection (a TCP FIN;
relays such as rsyslog check for it before each write, then close and send the rest to the next
instance), reads what arrives until the sender closes or falls quiet, and only then closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import time
from dataclasses import dataclass, field

from pipeline.errors import ConfigError
from pipeline.metrics import METRICS, Metrics
from pipeline.settings import Settings
from pipeline.syslog.octets import Cut, StreamFramer
from pipeline.syslog.publisher import Publisher
from pipeline.wire import raw_key

# stop(): a half-closed connection is closed once its sender has sent nothing for STOP_QUIET_S,
# and every connection after STOP_GRACE_S at the latest.
STOP_QUIET_S = 1.0
STOP_GRACE_S = 10.0


@dataclass
class ListenerStats:
    received: dict[str, int] = field(default_factory=lambda: {"udp": 0, "tcp": 0, "tls": 0})
    udp_dropped: int = 0
    truncated: int = 0
    bad_frames: int = 0
    rejected_connections: int = 0
    idle_closed: int = 0


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class _UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, server: SyslogServer) -> None:
        self.server = server
        self.publisher = server.publisher
        self.max_bytes = server.settings.max_message_bytes
        self._received = server.metrics.syslog_messages.labels("udp")
        self._dropped_full = server.metrics.syslog_dropped.labels("udp", "buffer_full")
        self._truncated = server.metrics.syslog_dropped.labels("udp", "oversized")

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        stats = self.server.stats
        stats.received["udp"] += 1
        self._received.inc()
        if self.publisher.full:
            stats.udp_dropped += 1
            self._dropped_full.inc()
            return
        cut = len(data) > self.max_bytes
        if cut:
            data = data[: self.max_bytes]
            stats.truncated += 1
            self._truncated.inc()
        data = data.rstrip(b"\r\n\x00")
        if not data:
            return
        self.publisher.offer(
            data, raw_key(data, addr[0]), f"{addr[0]}:{addr[1]}", _now_ms(), cut=cut
        )


class _StreamProtocol(asyncio.Protocol):
    """One TCP or TLS connection."""

    def __init__(self, server: SyslogServer, transport_name: str) -> None:
        self.server = server
        self.name = transport_name
        self.publisher = server.publisher
        self.framer = StreamFramer(server.settings.max_message_bytes)
        self.transport: asyncio.Transport | None = None
        self.sender = ""
        self.ip = ""
        self.last_seen = time.monotonic()
        self.last_data = self.last_seen
        self.paused = False
        # Set when we close the connection (shutdown): an unterminated tail is then a message
        # the sender had not finished, not one to publish.
        self.cut_off = False
        metrics = server.metrics
        self._received = metrics.syslog_messages.labels(transport_name)
        self._truncated = metrics.syslog_dropped.labels(transport_name, "oversized")
        self._connections = metrics.syslog_connections.labels(transport_name)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername") or ("?", 0)
        self.ip = str(peer[0])
        self.sender = f"{peer[0]}:{peer[1]}"
        if len(self.server.connections) >= self.server.settings.max_connections:
            self.server.stats.rejected_connections += 1
            self.server.metrics.syslog_dropped.labels(self.name, "connection_limit").inc()
            transport.close()
            return
        self.server.connections.add(self)
        self._connections.inc()

    def data_received(self, data: bytes) -> None:
        self.last_data = time.monotonic()
        framer = self.framer
        before = framer.truncated
        messages = framer.feed(data)
        # Only whole messages count as activity: a sender trickling the bytes of a message
        # that never ends (slowloris) is timed out like an idle one.
        if messages or not framer.pending:
            self.last_seen = time.monotonic()
        if messages:
            self._publish(messages)
        if framer.truncated != before:
            self.server.stats.truncated += framer.truncated - before
            self._truncated.inc(framer.truncated - before)
        if self.publisher.full and not self.paused and self.transport is not None:
            self.paused = True
            self.transport.pause_reading()
            self.publisher.when_room(self._resume)

    def _publish(self, messages: list[bytes]) -> None:
        ip = self.ip
        batch = []
        for message in messages:
            if type(message) is Cut:  # the Kafka client takes plain bytes only
                whole = bytes(message)
                batch.append((whole, raw_key(whole, ip), True))
            else:
                batch.append((message, raw_key(message, ip), False))
        self.publisher.offer_many(batch, self.sender, _now_ms())
        self.server.stats.received[self.name] += len(messages)
        self._received.inc(len(messages))

    def _resume(self) -> None:
        self.paused = False
        if self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()

    def eof_received(self) -> bool | None:
        return None  # close our side too

    def half_close(self) -> None:
        """Tell the sender we are going (FIN on the TCP socket, also under TLS: a TLS
        close_notify is not what a sender checks for) and keep reading what it still sends."""
        if self.transport is None:
            return
        if self.paused:
            self.paused = False
            self.transport.resume_reading()
        sock = self.transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_WR)
        self.last_data = time.monotonic()

    def connection_lost(self, exc: Exception | None) -> None:
        rest = [] if self.cut_off else self.framer.flush()
        if rest:
            self._publish(rest)
        self.server.stats.bad_frames += self.framer.bad_frames
        if self in self.server.connections:
            self.server.connections.discard(self)
            self._connections.dec()
        self.transport = None


def tls_context(settings: Settings) -> ssl.SSLContext:
    """Server TLS context from settings; client certificates required when a CA is set."""
    if not settings.syslog_tls_cert or not settings.syslog_tls_key:
        raise ConfigError("setting syslog_tls_cert and syslog_tls_key are needed for TLS ingest")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(
            settings.syslog_tls_cert,
            settings.syslog_tls_key,
            password=settings.syslog_tls_key_password or None,
        )
        if settings.syslog_tls_client_ca:
            context.load_verify_locations(settings.syslog_tls_client_ca)
            context.verify_mode = ssl.CERT_REQUIRED
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"setting syslog_tls_cert/key/client_ca: {exc}") from exc
    return context


class SyslogServer:
    """UDP, TCP and (when a certificate is configured) TLS listeners on the loopback/bind."""

    def __init__(
        self, settings: Settings, publisher: Publisher, metrics: Metrics = METRICS
    ) -> None:
        self.settings = settings
        self.publisher = publisher
        self.metrics = metrics
        self.stats = ListenerStats()
        self.connections: set[_StreamProtocol] = set()
        self._servers: list[asyncio.AbstractServer] = []
        self._udp: asyncio.DatagramTransport | None = None
        self._sweeper: asyncio.Task | None = None
        self.addresses: dict[str, tuple[str, int]] = {}

    async def start(self, *, udp: bool = True, tcp: bool = True, tls: bool | None = None) -> None:
        loop = asyncio.get_running_loop()
        s = self.settings
        if tls is None:
            tls = bool(s.syslog_tls_cert)
        if udp:
            transport, _ = await loop.create_datagram_endpoint(
                lambda: _UdpProtocol(self), local_addr=(s.syslog_bind, s.syslog_udp_port)
            )
            self._udp = transport
            self.addresses["udp"] = transport.get_extra_info("sockname")[:2]
        if tcp:
            server = await loop.create_server(
                lambda: _StreamProtocol(self, "tcp"), s.syslog_bind, s.syslog_tcp_port
            )
            self._servers.append(server)
            self.addresses["tcp"] = server.sockets[0].getsockname()[:2]
        if tls:
            server = await loop.create_server(
                lambda: _StreamProtocol(self, "tls"),
                s.syslog_bind,
                s.syslog_tls_port,
                ssl=tls_context(s),
                ssl_handshake_timeout=30,
            )
            self._servers.append(server)
            self.addresses["tls"] = server.sockets[0].getsockname()[:2]
        self._sweeper = asyncio.create_task(self._sweep_idle())

    async def _sweep_idle(self) -> None:
        timeout = self.settings.idle_timeout_s
        interval = max(0.05, min(timeout / 4, 5.0))
        while True:
            await asyncio.sleep(interval)
            cutoff = time.monotonic() - timeout
            for conn in list(self.connections):
                # a paused connection is waiting on us, not idle
                if conn.last_seen < cutoff and not conn.paused and conn.transport is not None:
                    self.stats.idle_closed += 1
                    conn.transport.close()

    async def stop(self, quiet_s: float = STOP_QUIET_S, grace_s: float = STOP_GRACE_S) -> None:
        """Stop accepting; half-close every stream connection and read on until its sender
        closes it or sends nothing for ``quiet_s`` (``grace_s`` at most), then close it. A
        message the sender had not finished by then is dropped, as it was never complete."""
        if self._sweeper is not None:
            self._sweeper.cancel()
        for server in self._servers:
            server.close()
        if self._udp is not None:
            self._udp.close()
        open_conns = [conn for conn in self.connections if conn.transport is not None]
        for conn in open_conns:
            conn.half_close()
        deadline = time.monotonic() + grace_s
        while True:
            now = time.monotonic()
            waiting = False
            for conn in open_conns:
                transport = conn.transport
                if transport is None or transport.is_closing():
                    continue
                if now >= deadline or now - conn.last_data >= quiet_s:
                    conn.cut_off = True
                    transport.close()
                else:
                    waiting = True
            if not waiting:
                break
            await asyncio.sleep(0.05)
        for server in self._servers:
            await server.wait_closed()
        await asyncio.sleep(0)
