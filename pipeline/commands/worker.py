"""``decryptscope worker``: run a worker until SIGTERM/SIGINT (Faust's Worker handles both and
shuts down), without Faust's own command-line parsing."""

from __future__ import annotations

import argparse
import gc
import logging

import faust

from pipeline import kafka_config
from pipeline.settings import Settings
from pipeline.sinks import es_auth
from pipeline.sinks.elasticsearch import make_client
from pipeline.stream.app import create_app

# The correlation table and Faust hold many long-lived containers; the default gen-0 threshold
# (700 allocations) has the collector walk young objects thousands of times a second at full
# rate.
GC_THRESHOLD = 50_000


def run(args: argparse.Namespace, settings: Settings) -> int:
    kafka_config.preflight(settings, "worker")
    if settings.worker_index:
        client = make_client(settings, asynchronous=False)
        try:
            es_auth.preflight(client, settings, "worker", reachable=False)
        finally:
            client.close()
    app = create_app(settings)
    level = args.loglevel.upper()
    # aiokafka logs at debug level on every send; an explicit level keeps that off the hot
    # path whatever the root logger says.
    for name in ("faust", "mode", "aiokafka", "kafka"):
        logging.getLogger(name).setLevel(level)
    # Startup objects are frozen out of collections altogether.
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_THRESHOLD, 20, 20)
    worker = faust.Worker(app, loglevel=level, quiet=True)
    worker.execute_from_commandline()
    return 0
