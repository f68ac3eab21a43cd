"""``decryptscope diagnose [FILE|-]``: a ``show session id`` output or log lines -> the verdict
for each record, through the chain the worker runs (the lines of one session are diagnosed
together)."""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path

import orjson

from pipeline import wire
from pipeline.chain import Document
from pipeline.commands.offline import chain_for, run_lines, sessions_for
from pipeline.diagnosis.explain import render_text, verdict
from pipeline.errors import ConfigError, NotRecognisedError
from pipeline.settings import Settings

EXIT_NOT_RECOGNISED = 2
# Everything given to diagnose is one batch: it is read whole anyway.
_ONE_BATCH = 1 << 30


def _read(source: str) -> str:
    if source == "-":
        data = sys.stdin.buffer.read()
    else:
        try:
            data = Path(source).read_bytes()
        except OSError as exc:
            raise ConfigError(f"cannot read {source}: {exc.strerror}") from exc
    return data.decode("utf-8", "replace")


def _only_serial(text: str) -> str | None:
    """The firewall serial when the log lines name exactly one: a ``show session id`` output
    pasted beside them (it names none) belongs to that firewall."""
    serials = {wire.raw_key(line.encode(), "") for line in text.splitlines()} - {b""}
    return serials.pop().decode() if len(serials) == 1 else None


def documents(text: str, settings: Settings) -> list[Document]:
    """The documents of ``text``; NotRecognisedError when nothing in it is a PAN-OS log line
    or a ``show session id`` output."""
    if not text.strip():
        raise NotRecognisedError(
            "empty input: give a PAN-OS log line or a 'show session id' output"
        )
    chain = chain_for(settings, session_serial=_only_serial(text))
    batches = list(run_lines(text.splitlines(), chain, sessions_for(settings), batch=_ONE_BATCH))
    docs = [doc for batch in batches for doc in batch.result.documents]
    if not docs:
        letters = [letter for batch in batches for letter in batch.result.dead_letters]
        detail = f" ({letters[0][1]['message']})" if letters else ""
        raise NotRecognisedError(
            "not recognised: the input is neither a PAN-OS log line nor a 'show session id' "
            f"output{detail}"
        )
    return docs


def run(args: argparse.Namespace, settings: Settings) -> int:
    try:
        docs = documents(_read(args.file), settings)
    except NotRecognisedError as exc:
        print(f"decryptscope diagnose: {exc.message}", file=sys.stderr)
        return EXIT_NOT_RECOGNISED
    catalogue = chain_for(settings).classifier.catalogue
    sessions: dict[str, list[Document]] = defaultdict(list)
    for doc in docs:
        if doc.session is not None:
            sessions[doc.session].append(doc)
    results = []
    for doc in docs:
        related = [d.record for d in sessions.get(doc.session or "", ()) if d is not doc]
        results.append((doc.record, doc.diagnosis, related))
    if args.json:
        body = {"verdicts": [verdict(r, d, catalogue, rel) for r, d, rel in results]}
        sys.stdout.write(orjson.dumps(body, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        blocks = [render_text(r, d, catalogue, rel) for r, d, rel in results]
        sys.stdout.write(("\n" + "-" * 72 + "\n\n").join(blocks))
    return 0
