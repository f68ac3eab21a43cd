"""``decryptscope replay``: send log files to a syslog listener, as a firewall would.

Lines without a syslog header get a BSD one (``<14>Mmm dd HH:MM:SS host``). ``now`` rewrites
the PAN-OS timestamps (``YYYY/MM/DD HH:MM:SS``, ISO-8601 high-resolution ones and the syslog
header's) to the current time; ``keep_offsets`` instead moves them all by the same amount, so
that the latest is now and the lines keep their spacing (and certificate dates their distance).
TCP and TLS use newline framing, or RFC 6587 octet counting. Blank lines and ``#`` comment
lines (the samples' source notes) are skipped.
"""

from __future__ import annotations

import argparse
import re
import socket
import ssl
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

from pipeline.errors import ConfigError
from pipeline.settings import Settings

_PANOS_TIME = re.compile(rb"\b\d{4}/\d{2}/\d{2} \d{2}:\d{2}:\d{2}\b")
_ISO_TIME = re.compile(rb"\b\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:?\d{2})")
_BSD_TIME = re.compile(rb"^(<\d{1,3}>)([A-Z][a-z]{2} [ \d]\d \d{2}:\d{2}:\d{2})")
_RFC5424_TIME = re.compile(rb"^(<\d{1,3}>1 )(\S+)")
_PRI = re.compile(rb"^<\d{1,3}>")
CHUNK_BYTES = 64 * 1024


@dataclass(frozen=True)
class Target:
    scheme: str  # udp, tcp, tls
    host: str
    port: int


def parse_target(text: str) -> Target:
    parts = urlsplit(text)
    if parts.scheme not in {"udp", "tcp", "tls"} or not parts.hostname or not parts.port:
        raise ConfigError(f"--to {text!r}: expected udp://host:port, tcp://host:port or tls://...")
    return Target(parts.scheme, parts.hostname, parts.port)


def read_lines(paths: Iterable[str | Path]) -> list[bytes]:
    """The log lines of the files: no blank lines, no ``#`` comments, no line endings."""
    out: list[bytes] = []
    for path in paths:
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            raise ConfigError(f"cannot read {path}: {exc}") from exc
        for line in data.splitlines():
            stripped = line.strip()
            if stripped and not stripped.startswith(b"#"):
                out.append(line.rstrip(b"\r\n"))
    return out


def with_header(line: bytes, now: datetime, host: bytes = b"replay") -> bytes:
    """The line itself when it has a syslog PRI, else with a BSD header added."""
    if _PRI.match(line):
        return line
    return b"<14>%s %s %s" % (now.strftime("%b %e %H:%M:%S").encode(), host, line)


def rewrite_times(line: bytes, now: datetime) -> bytes:
    """Every timestamp of the line set to ``now`` (local time of ``now``, same formats)."""
    panos = now.strftime("%Y/%m/%d %H:%M:%S").encode()
    iso = now.isoformat(timespec="milliseconds").encode()
    bsd = now.strftime("%b %e %H:%M:%S").encode()
    line = _BSD_TIME.sub(lambda m: m.group(1) + bsd, line, count=1)
    line = _RFC5424_TIME.sub(lambda m: m.group(1) + iso, line, count=1)
    line = _PANOS_TIME.sub(panos, line)
    return _ISO_TIME.sub(iso, line)


def _shifted_iso(text: bytes, delta: timedelta) -> bytes:
    when = datetime.fromisoformat(text.decode()) + delta
    fraction = b"." in text
    return when.isoformat(timespec="milliseconds" if fraction else "seconds").encode()


def shift_times(line: bytes, delta: timedelta, year: int) -> bytes:
    """Every timestamp of the line moved by ``delta``; ``year`` is the BSD header's (it has
    none of its own). PAN-OS times are moved as written, in the firewall's time zone."""

    def bsd(m: re.Match[bytes]) -> bytes:
        when = datetime.strptime(f"{year} {m.group(2).decode()}", "%Y %b %d %H:%M:%S")
        return m.group(1) + (when + delta).strftime("%b %e %H:%M:%S").encode()

    def panos(m: re.Match[bytes]) -> bytes:
        when = datetime.strptime(m.group(0).decode(), "%Y/%m/%d %H:%M:%S")
        return (when + delta).strftime("%Y/%m/%d %H:%M:%S").encode()

    line = _BSD_TIME.sub(bsd, line, count=1)
    line = _RFC5424_TIME.sub(lambda m: m.group(1) + _shifted_iso(m.group(2), delta), line, count=1)
    line = _PANOS_TIME.sub(panos, line)
    return _ISO_TIME.sub(lambda m: _shifted_iso(m.group(0), delta), line)


def latest_time(lines: Sequence[bytes]) -> datetime | None:
    """The latest receive time of the lines: each line's first PAN-OS timestamp
    (``YYYY/MM/DD HH:MM:SS``; later ones can be certificate dates, years ahead)."""
    found = [m.group(0) for m in map(_PANOS_TIME.search, lines) if m is not None]
    if not found:
        return None
    return datetime.strptime(max(found).decode(), "%Y/%m/%d %H:%M:%S")


def prepare(lines: Sequence[bytes], *, now: bool, keep_offsets: bool = False) -> list[bytes]:
    stamp = datetime.now().astimezone()
    latest = latest_time(lines) if now and keep_offsets else None
    if latest is not None:
        # The files' PAN-OS times are UTC (the default device time zone): the latest becomes
        # the current UTC time.
        delta = datetime.now(UTC).replace(tzinfo=None) - latest
        return [with_header(shift_times(line, delta, latest.year), stamp) for line in lines]
    out = []
    for line in lines:
        message = with_header(line, stamp)
        out.append(rewrite_times(message, stamp) if now else message)
    return out


def frame(message: bytes, octet_counting: bool) -> bytes:
    return b"%d %s" % (len(message), message) if octet_counting else message + b"\n"


class _Sender:
    def __init__(
        self,
        target: Target,
        *,
        octet_counting: bool,
        cafile: str | None,
        insecure: bool,
        certfile: str | None,
        keyfile: str | None,
    ) -> None:
        self.target = target
        self.octet_counting = octet_counting
        address = (target.host, target.port)
        try:
            if target.scheme == "udp":
                self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                self.sock.connect(address)
            else:
                raw = socket.create_connection(address, timeout=30)
                if target.scheme == "tls":
                    context = ssl.create_default_context(cafile=cafile)
                    if insecure:
                        context.check_hostname = False
                        context.verify_mode = ssl.CERT_NONE
                    if certfile:
                        context.load_cert_chain(certfile, keyfile)
                    raw = context.wrap_socket(raw, server_hostname=target.host)
                raw.settimeout(None)
                self.sock = raw
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"cannot connect to {target.scheme}://{address}: {exc}") from exc
        self.pending: list[bytes] = []
        self.pending_bytes = 0

    def send(self, message: bytes) -> None:
        if self.target.scheme == "udp":
            self.sock.send(message)
            return
        data = frame(message, self.octet_counting)
        self.pending.append(data)
        self.pending_bytes += len(data)
        if self.pending_bytes >= CHUNK_BYTES:
            self.flush()

    def flush(self) -> None:
        if self.pending:
            self.sock.sendall(b"".join(self.pending))
            self.pending.clear()
            self.pending_bytes = 0

    def close(self) -> None:
        try:
            self.flush()
            if self.target.scheme != "udp":
                self.sock.shutdown(socket.SHUT_WR)
                # wait for the listener to close: it has then read everything we sent
                self.sock.settimeout(10)
                while self.sock.recv(4096):
                    pass
        except OSError:
            pass
        finally:
            self.sock.close()


def replay(
    messages: Sequence[bytes],
    target: Target,
    *,
    rate: float | None = None,
    loop: bool = False,
    octet_counting: bool = False,
    cafile: str | None = None,
    insecure: bool = False,
    certfile: str | None = None,
    keyfile: str | None = None,
    progress: bool | None = None,
    on_sent: Callable[[int, float], None] | None = None,
) -> int:
    """Send ``messages`` (already with headers) to ``target``; returns how many were sent.

    ``rate`` caps messages per second; ``loop`` repeats until interrupted. ``on_sent(i, t)``
    is called with each message's index and send time (for latency measurements)."""
    from tqdm import tqdm

    if not messages:
        return 0
    if rate is not None and rate <= 0:
        raise ConfigError(f"--rate must be > 0, got {rate}")
    sender = _Sender(
        target,
        octet_counting=octet_counting,
        cafile=cafile,
        insecure=insecure,
        certfile=certfile,
        keyfile=keyfile,
    )
    disable = not sys.stderr.isatty() if progress is None else not progress
    bar = tqdm(total=None if loop else len(messages), unit="msg", file=sys.stderr, disable=disable)
    sent = 0
    started = time.monotonic()
    # rate-limited sends go in small bursts so the rate holds without a sleep per message
    burst = max(1, int(rate / 100)) if rate else 0
    try:
        while True:
            for index, message in enumerate(messages):
                if on_sent is not None:
                    on_sent(index, time.time())
                sender.send(message)
                sent += 1
                if burst and sent % burst == 0:
                    sender.flush()
                    ahead = sent / rate - (time.monotonic() - started)  # type: ignore[operator]
                    if ahead > 0:
                        time.sleep(ahead)
                if sent % 1000 == 0:
                    bar.update(1000)
            if not loop:
                break
    finally:
        sender.close()
        bar.update(sent % 1000)
        bar.close()
    return sent


def run(args: argparse.Namespace, settings: Settings) -> int:
    target = parse_target(args.to)
    messages = prepare(read_lines(args.files), now=args.now)
    sent = replay(
        messages,
        target,
        rate=args.rate,
        loop=args.loop,
        octet_counting=args.octet_counting,
        cafile=args.cafile,
        insecure=args.insecure,
        certfile=args.cert,
        keyfile=args.key,
    )
    print(f"sent {sent} messages to {args.to}", file=sys.stderr)
    return 0
