"""``decryptscope ingest``: the syslog listeners and their ``/metrics`` until SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses

from pipeline.ingest import serve
from pipeline.metrics import serve_metrics
from pipeline.settings import Settings


def run(args: argparse.Namespace, settings: Settings) -> int:
    if args.spool:
        settings = dataclasses.replace(settings, spool_dir=args.spool)
    server, _thread = serve_metrics(settings.ingest_metrics_port, settings.ingest_metrics_bind)
    try:
        asyncio.run(serve(settings))
    finally:
        server.shutdown()
    return 0
