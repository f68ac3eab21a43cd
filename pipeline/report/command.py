"""``decryptscope analyze [FILE ...]``: read log files (plain or gzip, ``-`` = stdin), report
failures by cause with top servers, rules and sources and the fixes. Offline: no Kafka, no
Elasticsearch."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from tqdm import tqdm

from pipeline.analyze import Analyzer
from pipeline.errors import ConfigError, ParseError
from pipeline.report.html import render_html
from pipeline.report.text import render_json, render_text
from pipeline.settings import Settings


def _size(path: str) -> int | None:
    if path == "-":
        return None
    try:
        return os.stat(path).st_size
    except OSError:
        return None


def _metered(stream: IO[bytes], bar: tqdm) -> Iterator[bytes]:
    for line in stream:
        bar.update(len(line))
        yield line


def main(args: argparse.Namespace, settings: Settings) -> int:
    from pipeline.panos import iter_records
    from pipeline.panos.reader import open_input

    files = args.files or ["-"]
    analyzer = Analyzer(
        window_s=settings.correlation_window_s, max_entries=settings.correlation_max_entries
    )
    show_progress = sys.stderr.isatty() and not args.no_progress
    for path in files:
        try:
            stream = open_input(path)
        except OSError as exc:
            raise ConfigError(f"cannot read {path}: {exc.strerror}") from exc
        with (
            stream,
            tqdm(
                total=_size(path),
                unit="B",
                unit_scale=True,
                desc=Path(path).name,
                disable=not show_progress,
                file=sys.stderr,
                leave=False,
            ) as bar,
        ):
            results = iter_records(
                _metered(stream, bar),
                default_tz=settings.default_timezone,
                tz_for=settings.timezone_for,
            )
            for _, result in results:
                if isinstance(result, ParseError):
                    analyzer.add_error(result.error_type)
                else:
                    analyzer.add(result)
    report = analyzer.report()
    report["inputs"] = files
    if args.html:
        try:
            Path(args.html).write_text(render_html(report, sources=files), encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot write {args.html}: {exc.strerror}") from exc
        print(f"decryptscope analyze: wrote {args.html}", file=sys.stderr)
    sys.stdout.write(render_json(report) if args.json else render_text(report))
    return 0
