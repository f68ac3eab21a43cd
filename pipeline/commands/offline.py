"""Log files through the chain: what ``parse``, ``analyze`` and ``diagnose`` share.

Files (plain or gzip, ``-`` for stdin) are read line by line and grouped into messages (a
``show session id`` output spans lines), in batches, through ``pipeline.chain`` with an
in-memory correlation store and the records' own times as the clock: the same verdicts as the
worker gives for the same lines.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import IO, Any

from pipeline.chain import BatchResult, Chain, ChainConfig, Message, run_all
from pipeline.correlate import Sessions
from pipeline.errors import ConfigError
from pipeline.panos.reader import iter_events, open_input
from pipeline.settings import Settings

BATCH = 2000


@dataclass(frozen=True, slots=True)
class Batch:
    """One batch of a file: the chain's result and the line number of each message."""

    path: str
    lines: list[int]
    result: BatchResult


def chain_for(settings: Settings, *, correlate: bool = True, **overrides: Any) -> Chain:
    return Chain(
        ChainConfig.from_settings(settings, event_time=True, correlate=correlate, **overrides)
    )


def sessions_for(settings: Settings) -> Sessions:
    return Sessions(settings.correlation_window_s, settings.correlation_max_entries)


def run_lines(
    lines: Iterable[bytes | str],
    chain: Chain,
    sessions: Sessions,
    *,
    path: str = "<input>",
    batch: int = BATCH,
    versions: dict[str, tuple[str, str | None]] | None = None,
) -> Iterator[Batch]:
    """The batches of ``lines`` through ``chain``; ``sessions`` carries over between calls, and
    ``versions`` (the config version each firewall wrote last) when given."""
    if versions is None:
        versions = {}
    clock = 0.0
    numbers: list[int] = []
    messages: list[Message] = []
    for number, message in iter_events(lines):
        numbers.append(number)
        messages.append(Message(message))
        if len(messages) >= batch:
            result = run_all(chain, messages, sessions, clock, versions)
            clock = result.clock
            yield Batch(path, numbers, result)
            numbers, messages = [], []
    if messages:
        yield Batch(path, numbers, run_all(chain, messages, sessions, clock, versions))


def run_files(
    paths: Iterable[str],
    chain: Chain,
    sessions: Sessions,
    *,
    meter: Callable[[str, IO[bytes]], Iterable[bytes]] | None = None,
) -> Iterator[Batch]:
    """The batches of every file in turn (one correlation store across files: a session's
    lines may be split over rotated files). ``meter(path, stream)`` may wrap each stream (a
    progress bar). A file that cannot be read raises ConfigError."""
    versions: dict[str, tuple[str, str | None]] = {}
    for path in paths:
        name = "<stdin>" if path == "-" else str(path)
        try:
            stream = open_input(path)
        except OSError as exc:
            raise ConfigError(f"cannot read {name}: {exc.strerror or exc}") from exc
        try:
            lines = meter(path, stream) if meter is not None else stream
            yield from run_lines(lines, chain, sessions, path=name, versions=versions)
        except (OSError, EOFError) as exc:
            raise ConfigError(f"cannot read {name}: {exc}") from exc
        finally:
            if path != "-":
                stream.close()
