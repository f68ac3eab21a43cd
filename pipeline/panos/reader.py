"""Reading many events: lines of a file (plain or gzip) grouped into messages - one per line,
except a ``show session id`` output, which spans lines and is one message."""

from __future__ import annotations

import gzip
import io
import sys
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO

from pipeline.errors import DecryptscopeError, ParseError
from pipeline.panos.line import parse_line
from pipeline.panos.session_text import PROMPT, SESSION_HEAD, SESSION_LINE

_GZIP_MAGIC = b"\x1f\x8b"


def _as_text(line: bytes | str) -> str:
    return line.decode("utf-8", "replace") if isinstance(line, bytes | bytearray) else line


def iter_events(lines: Iterable[bytes | str]) -> Iterator[tuple[int, bytes | str]]:
    """(first line number, message) for each message. Blank lines and ``#`` comment lines
    (never the start of a PAN-OS log) are skipped. A ``show session id`` output runs until
    the next output starts (a prompt, a second "Session <id>" line), a log line or a comment
    line: the CLI pads its sections with blank lines, which stay inside the output."""
    block: list[str] = []
    block_start = 0
    has_head = False
    blanks = 0  # blank lines seen since the block's last line: kept only if the block goes on
    for number, line in enumerate(lines, start=1):
        text = _as_text(line).rstrip("\r\n")
        stripped = text.strip()
        if not stripped:
            if block:
                blanks += 1
            continue
        if stripped.startswith("#"):
            if block:
                yield block_start, "\n".join(block)
                block = []
            continue
        if SESSION_LINE.match(text):
            head = SESSION_HEAD.match(text) is not None
            # A prompt always opens an output; "Session <id>" does unless it follows one.
            if block and (PROMPT.match(text) or (head and has_head)):
                yield block_start, "\n".join(block)
                block = []
            if block:
                block.extend([""] * blanks)
            else:
                block_start, has_head = number, False
            blanks = 0
            has_head = has_head or head
            block.append(text)
            continue
        if block:
            yield block_start, "\n".join(block)
            block = []
        yield number, line
    if block:
        yield block_start, "\n".join(block)


def iter_records(
    lines: Iterable[bytes | str],
    *,
    default_tz: str = "UTC",
    tz_for: Callable[[str], str] | None = None,
) -> Iterator[tuple[int, dict | ParseError]]:
    """(line number, record or the ParseError it raised) for each message of ``lines``."""
    for number, message in iter_events(lines):
        try:
            yield number, parse_line(message, default_tz=default_tz, tz_for=tz_for)
        except ParseError as exc:
            yield number, exc


def parse_text(
    text: str | bytes,
    *,
    default_tz: str = "UTC",
    tz_for: Callable[[str], str] | None = None,
) -> list[dict]:
    """Every record in ``text`` (log lines and ``show session id`` outputs); raises the first
    ParseError."""
    if isinstance(text, bytes | bytearray):
        text = text.decode("utf-8", "replace")
    out: list[dict] = []
    for _, result in iter_records(text.splitlines(), default_tz=default_tz, tz_for=tz_for):
        if isinstance(result, ParseError):
            raise result
        out.append(result)
    return out


def open_input(path: str | Path) -> IO[bytes]:
    """A binary stream over ``path`` ("-" = stdin), gunzipped when it starts gzip's magic."""
    raw: IO[bytes] = sys.stdin.buffer if str(path) == "-" else open(path, "rb")  # noqa: SIM115
    peek = raw.peek(2)[:2] if isinstance(raw, io.BufferedReader) else b""
    if peek == _GZIP_MAGIC:
        return gzip.GzipFile(fileobj=raw)  # type: ignore[return-value]
    return raw


def _classifier() -> Callable[..., object] | None:
    try:
        from pipeline.diagnosis import classify
    except ImportError:
        return None
    return classify


def run_parse(
    paths: Iterable[str],
    out: IO[bytes],
    err: IO[str],
    *,
    default_tz: str = "UTC",
    tz_for: Callable[[str], str] | None = None,
    diagnose: bool = True,
    convert: Callable[[dict], dict | None] | None = None,
) -> int:
    """``decryptscope parse``: one ECS document per event as NDJSON on ``out``; one JSON error
    object (file, line, error_type, message) per message that cannot be parsed on ``err``.
    ``convert`` turns each ECS document into what is written instead (None: nothing written).
    Returns the number of such messages; a file that cannot be read raises DecryptscopeError."""
    import orjson

    from pipeline.ecs import to_ecs

    classify = _classifier() if diagnose else None
    failures = 0
    for path in paths:
        name = "<stdin>" if path == "-" else str(path)
        try:
            stream = open_input(path)
        except OSError as exc:
            raise DecryptscopeError(f"cannot read {name}: {exc.strerror or exc}") from exc
        try:
            for number, result in iter_records(stream, default_tz=default_tz, tz_for=tz_for):
                if isinstance(result, ParseError):
                    failures += 1
                    error = {
                        "file": name,
                        "line": number,
                        "error_type": result.error_type,
                        "message": result.message,
                    }
                    err.write(orjson.dumps(error).decode() + "\n")
                    continue
                diagnosis = classify(result) if classify is not None else None
                doc = to_ecs(result, diagnosis)
                if convert is not None:
                    doc = convert(doc)
                    if doc is None:
                        continue
                out.write(orjson.dumps(doc) + b"\n")
        except (OSError, EOFError) as exc:
            raise DecryptscopeError(f"cannot read {name}: {exc}") from exc
        finally:
            if path != "-":
                stream.close()
    return failures
