"""``decryptscope parse``: log files -> one ECS document (or OCSF event) per event, and one per
change point (``event.dataset: decryptscope.change``), NDJSON on stdout.

Lines go through the chain the worker runs (``pipeline.commands.offline``): diagnosed and, by
default, correlated with the other lines of their session. Within a batch of lines each
document appears once, with its last verdict; a session whose lines fall into two batches can
show a document twice (same serial, log type and sequence number: the later one wins, as in
Elasticsearch). A message that cannot be processed is one JSON error object (file, line,
error_type, message) on stderr."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable
from typing import IO

import orjson

from pipeline.commands.offline import chain_for, run_files, sessions_for
from pipeline.settings import Settings


def write_documents(
    paths: Iterable[str],
    out: IO[bytes],
    err: IO[str],
    settings: Settings,
    *,
    diagnose: bool = True,
    correlate: bool = True,
    output: str = "ecs",
) -> int:
    """Write the documents of ``paths`` to ``out`` (ECS, or ``output="ocsf"``: their OCSF
    events) and their errors to ``err``; returns the number of messages that could not be
    processed."""
    chain = chain_for(settings, correlate=correlate, diagnose=diagnose, ocsf=output == "ocsf")
    failures = 0
    for batch in run_files(paths, chain, sessions_for(settings)):
        result = batch.result
        if output == "ocsf":
            out.write(b"".join(d.ocsf + b"\n" for d in result.documents if d.ocsf is not None))
        else:
            out.write(b"".join(doc.source + b"\n" for doc in result.documents))
        for position, letter in result.dead_letters:
            failures += 1
            error = {
                "file": batch.path,
                "line": batch.lines[position],
                "error_type": letter["error_type"],
                "message": letter["message"],
            }
            err.write(orjson.dumps(error).decode() + "\n")
    return failures


def run(args: argparse.Namespace, settings: Settings) -> int:
    failures = write_documents(
        args.files or ["-"],
        sys.stdout.buffer,
        sys.stderr,
        settings,
        diagnose=not args.no_diagnosis,
        correlate=not args.no_correlation,
        output=args.format,
    )
    sys.stdout.flush()
    return 1 if failures and args.strict else 0
