"""Cutting a syslog byte *stream* (TCP, TLS) into messages.

Two framings exist on the wire: newline-terminated messages (RFC 6587 "non-transparent
framing", what most relays and PAN-OS send) and octet counting (RFC 6587 section 3.4.1 and
RFC 5425: ``MSG-LEN SP SYSLOG-MSG``). A sender uses one framing per connection, so the first
byte of the connection decides: a digit means octet counting, anything else newline framing.

The framer only cuts; it neither parses nor strips headers (see ``framing.py`` for that). A
message longer than ``max_bytes`` is cut to ``max_bytes`` and counted in ``truncated``; the rest
of it is skipped so the next message starts cleanly.
"""

from __future__ import annotations

LF = 0x0A


class Cut(bytes):
    """A message cut to ``max_bytes``: the listener marks it so the worker dead-letters it."""

    __slots__ = ()


_DIGITS = frozenset(b"0123456789")
# The longest MSG-LEN we accept before calling the stream garbage: 10 digits is > 4 GB.
_MAX_LEN_DIGITS = 10


class StreamFramer:
    """Incremental framer for one connection: ``feed(data)`` returns the complete messages."""

    __slots__ = ("_buf", "_mode", "_skip", "_skip_to_lf", "bad_frames", "max_bytes", "truncated")

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._buf = bytearray()
        self._mode: str | None = None  # "octet" or "lf", decided by the first byte
        self._skip = 0  # octet mode: bytes of an oversized message still to discard
        self._skip_to_lf = False  # lf mode: discard up to the next LF (oversized message)
        self.truncated = 0
        self.bad_frames = 0

    @property
    def mode(self) -> str | None:
        return self._mode

    @property
    def pending(self) -> int:
        """Bytes received but not yet part of a complete message."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[bytes]:
        out: list[bytes] = []
        if not data:
            return out
        buf = self._buf
        if self._skip:
            if len(data) <= self._skip:
                self._skip -= len(data)
                return out
            data = data[self._skip :]
            self._skip = 0
        buf += data
        if self._mode is None:
            start = 0
            while start < len(buf) and buf[start] in b" \r\n\t":
                start += 1
            if start == len(buf):
                buf.clear()
                return out
            self._mode = "octet" if buf[start] in _DIGITS else "lf"
        if self._mode == "lf":
            self._feed_lf(out)
        else:
            self._feed_octet(out)
        return out

    def flush(self) -> list[bytes]:
        """At end of stream: what is left becomes a last message (LF framing only)."""
        out: list[bytes] = []
        if self._mode == "lf" and not self._skip_to_lf:
            message = bytes(self._buf).rstrip(b"\r\n")
            if message.strip():
                out.append(message)
        elif self._mode == "octet" and self._buf.strip():
            self.bad_frames += 1
        self._buf.clear()
        return out

    def _feed_lf(self, out: list[bytes]) -> None:
        buf = self._buf
        max_bytes = self.max_bytes
        start = 0
        end = len(buf)
        while start < end:
            nl = buf.find(LF, start)
            if self._skip_to_lf:
                if nl < 0:
                    start = end
                    break
                self._skip_to_lf = False
                start = nl + 1
                continue
            if nl < 0:
                if end - start > max_bytes:
                    out.append(Cut(buf[start : start + max_bytes]))
                    self.truncated += 1
                    self._skip_to_lf = True
                    start = end
                break
            stop = nl - 1 if nl > start and buf[nl - 1] == 0x0D else nl
            if stop - start > max_bytes:
                out.append(Cut(buf[start : start + max_bytes]))
                self.truncated += 1
            elif stop > start:
                out.append(bytes(buf[start:stop]))
            start = nl + 1
        del buf[:start]

    def _feed_octet(self, out: list[bytes]) -> None:
        buf = self._buf
        max_bytes = self.max_bytes
        pos = 0
        end = len(buf)
        while pos < end:
            # tolerate stray whitespace/newlines between frames (some senders add LF)
            while pos < end and buf[pos] in b" \r\n\t":
                pos += 1
            sp = buf.find(b" ", pos, pos + _MAX_LEN_DIGITS + 1)
            if sp < 0:
                if end - pos > _MAX_LEN_DIGITS:
                    self._resync(out, pos)
                    return
                break
            digits = buf[pos:sp]
            if not digits or not digits.isdigit():
                self._resync(out, pos)
                return
            length = int(digits)
            body = sp + 1
            if length > max_bytes:
                available = end - body
                if available < max_bytes:
                    break
                out.append(Cut(buf[body : body + max_bytes]))
                self.truncated += 1
                consumed = min(available, length)
                self._skip = length - consumed
                pos = body + consumed
                continue
            if end - body < length:
                break
            if length:
                out.append(bytes(buf[body : body + length]))
            pos = body + length
        del buf[:pos]

    def _resync(self, out: list[bytes], pos: int) -> None:
        """Not an octet count where one must be: the sender switched to newline framing (or
        sent garbage). Count it, and carry on in newline mode rather than stall the connection."""
        self.bad_frames += 1
        del self._buf[:pos]
        self._mode = "lf"
        self._feed_lf(out)
