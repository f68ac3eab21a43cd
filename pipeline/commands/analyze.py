"""``decryptscope analyze [FILE ...]``: read log files (plain or gzip, ``-`` = stdin) through
the chain, report failures by cause with top servers, rules and sources and the fixes.
Offline: no Kafka, no Elasticsearch."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from tqdm import tqdm

from pipeline.commands.offline import chain_for, run_files, sessions_for
from pipeline.errors import ConfigError
from pipeline.recommend import Gates
from pipeline.report.aggregate import Analyzer
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


def build(files: list[str], settings: Settings, *, progress: bool = False) -> dict:
    """The report of ``files``."""
    chain = chain_for(settings)
    sessions = sessions_for(settings)
    analyzer = Analyzer(chain.classifier.catalogue, sessions, Gates.from_settings(settings))
    bars: list[tqdm] = []

    def meter(path: str, stream: IO[bytes]) -> Iterator[bytes]:
        bar = tqdm(
            total=_size(path),
            unit="B",
            unit_scale=True,
            desc=Path(path).name,
            disable=not progress,
            file=sys.stderr,
            leave=False,
        )
        bars.append(bar)
        return _metered(stream, bar)

    try:
        for batch in run_files(files, chain, sessions, meter=meter):
            analyzer.add(batch.result)
    finally:
        for bar in bars:
            bar.close()
    report = analyzer.report()
    report["inputs"] = files
    return report


def run(args: argparse.Namespace, settings: Settings) -> int:
    files = args.files or ["-"]
    report = build(files, settings, progress=sys.stderr.isatty() and not args.no_progress)
    if args.html:
        try:
            Path(args.html).write_text(render_html(report, sources=files), encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot write {args.html}: {exc.strerror}") from exc
        print(f"decryptscope analyze: wrote {args.html}", file=sys.stderr)
    sys.stdout.write(render_json(report) if args.json else render_text(report))
    return 0
