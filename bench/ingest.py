"""CPU of the ingest per message: the messages over TCP into ``decryptscope ingest``, which
publishes them to Kafka (``panos.raw``), alone on the local stack (no worker).

For each compression given, one run (alternating when ``--runs`` > 1): the ingest's CPU time
(user + system) from the first to the last message acknowledged by Kafka, divided by the
messages, and the messages per second. Needs the stack (``decryptscope stack up``). Usage:

    python bench/ingest.py --messages 60000 --compression gzip,lz4 --runs 2
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import time
from pathlib import Path

# run from the checkout: the benchmark's helpers and the test harness are beside the package
ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from e2e import (  # noqa: E402
    cleanup,
    cpu_seconds,
    load,
    machine,
    make_messages,
    run_settings,
    setup,
    topic_size,
)

from pipeline.commands import replay  # noqa: E402
from pipeline.settings import Settings, load_settings  # noqa: E402
from tests.harness import Services  # noqa: E402

WARM = 1_000


def measure(s: Settings, messages: list[bytes]) -> tuple[float, float]:
    """(µs of ingest CPU per message, messages/s) for ``messages``."""
    setup(s, es=False)
    services = Services(s, Path(tempfile.mkdtemp()), workers=0).start(worker=False)
    try:
        pid = services.pid("ingest")
        target = replay.Target("tcp", "127.0.0.1", s.syslog_tcp_port)
        replay.replay(make_messages(WARM, offset=50_000_000), target, progress=False)
        while topic_size(s, s.topic_raw) < WARM:
            time.sleep(0.1)
        before = cpu_seconds(pid)
        started = time.perf_counter()
        replay.replay(messages, target, progress=False)
        while topic_size(s, s.topic_raw) < WARM + len(messages):
            time.sleep(0.05)
        elapsed = time.perf_counter() - started
        return (cpu_seconds(pid) - before) / len(messages) * 1e6, len(messages) / elapsed
    finally:
        services.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=60_000)
    parser.add_argument("--compression", default="lz4", help="comma-separated, e.g. gzip,lz4")
    parser.add_argument("--runs", type=int, default=1)
    args = parser.parse_args()
    base = load_settings()
    messages = make_messages(args.messages)
    print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}")
    print(f"machine: {machine()}; load average {load()} (1, 5, 15 min) before", flush=True)
    for run in range(args.runs):
        for compression in args.compression.split(","):
            tag = f"ingb{time.strftime('%H%M%S')}"
            s = dataclasses.replace(run_settings(base, tag, 2), kafka_compression=compression)
            try:
                cpu_us, rate = measure(s, messages)
            finally:
                cleanup(base, tag)
            print(
                f"run {run + 1}, {compression or 'none'}: {cpu_us:.1f} µs ingest CPU per message,"
                f" {rate:,.0f} messages/s",
                flush=True,
            )
    print(f"load average {load()} after")
    return 0


if __name__ == "__main__":
    sys.exit(main())
