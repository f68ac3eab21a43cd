"""``decryptscope analyze [FILE ...]``: read log files (plain or gzip, ``-`` = stdin) through
the chain, report failures by cause with top servers, rules and sources and the fixes, the
failures before and after each change point (``--change-at TIME[,serial]`` declares one),
decryption coverage and the certificates that will expire.
Offline: no Kafka, no Elasticsearch."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from tqdm import tqdm

from pipeline import certificates, changes
from pipeline.commands.offline import chain_for, run_files, sessions_for
from pipeline.errors import ConfigError
from pipeline.recommend import Gates
from pipeline.regression import Criteria
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


def build(
    files: list[str],
    settings: Settings,
    *,
    progress: bool = False,
    change_at: tuple[str, ...] = (),
) -> dict:
    """The report of ``files``; ``change_at``: changes declared for this run (``TIME[,serial]``
    each), besides the ``declared_changes`` setting."""
    chain = chain_for(settings)
    sessions = sessions_for(settings)
    analyzer = Analyzer(
        chain.classifier.catalogue,
        sessions,
        Gates.from_settings(settings),
        criteria=Criteria.from_settings(settings),
        merge_s=settings.change_merge_s,
        declared_changes=tuple(changes.declared((*settings.declared_changes, *change_at))),
        warn_days=settings.certificate_warn_days,
        declared_certificates=certificates.declared(settings),
    )
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
    report = build(
        files,
        settings,
        progress=sys.stderr.isatty() and not args.no_progress,
        change_at=tuple(getattr(args, "change_at", None) or ()),
    )
    if args.html:
        try:
            Path(args.html).write_text(render_html(report, sources=files), encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot write {args.html}: {exc.strerror}") from exc
        print(f"decryptscope analyze: wrote {args.html}", file=sys.stderr)
    sys.stdout.write(render_json(report) if args.json else render_text(report))
    return 0
