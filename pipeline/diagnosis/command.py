"""``decryptscope diagnose [FILE|-]``: read a ``show session id`` output or log lines, print
the verdict for each record (records of the same session are diagnosed together)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import orjson

from pipeline.diagnosis.classify import classifier_for
from pipeline.diagnosis.explain import render_text, verdict
from pipeline.diagnosis.inputs import read_records
from pipeline.errors import ConfigError, NotRecognisedError
from pipeline.settings import Settings

EXIT_NOT_RECOGNISED = 2


def _same_session(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    if a.get("sessionid") is None or a.get("sessionid") != b.get("sessionid"):
        return False
    # A pasted `show session id` output has no serial: the session id alone joins it.
    sa, sb = a.get("serial"), b.get("serial")
    return sa is None or sb is None or sa == sb


def _read(source: str) -> str:
    if source == "-":
        data = sys.stdin.buffer.read()
    else:
        try:
            data = Path(source).read_bytes()
        except OSError as exc:
            raise ConfigError(f"cannot read {source}: {exc.strerror}") from exc
    return data.decode("utf-8", "replace")


def main(args: argparse.Namespace, settings: Settings) -> int:
    text = _read(args.file)
    try:
        records = read_records(
            text, default_tz=settings.default_timezone, tz_for=settings.timezone_for
        )
    except NotRecognisedError as exc:
        print(f"decryptscope diagnose: {exc.message}", file=sys.stderr)
        return EXIT_NOT_RECOGNISED
    classifier = classifier_for(None)
    results = []
    for index, record in enumerate(records):
        related = [r for i, r in enumerate(records) if i != index and _same_session(record, r)]
        results.append((record, classifier.classify(record, related), related))
    if args.json:
        doc = {"verdicts": [verdict(r, d, classifier.catalogue, rel) for r, d, rel in results]}
        sys.stdout.write(orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        blocks = [render_text(r, d, classifier.catalogue, rel) for r, d, rel in results]
        sys.stdout.write(("\n" + "-" * 72 + "\n\n").join(blocks))
    return 0
