"""Chain throughput: the whole per-batch chain (frame, parse, diagnose, correlate, ECS and JSON,
change points, coverage) on one core, batches of 2000 messages.

The corpus is bench/parse.py's (DECRYPTION failures and successes, TRAFFIC, THREAT; each
firewall keeps one config version), streamed, with a SYSTEM line every 500 messages (half of
them content installs, which are change points). Where ``ChainConfig`` has ``changes``, the same
run also measures the chain without change points and versions (``changes=False``), so the
difference is their per-event cost; run the script against another checkout
(``PYTHONPATH=<checkout> python bench/chain.py``) to compare whole chains.

Throughput per CPU-second of this process (steadier than wall clock on a shared machine), per
run and the median, with the machine, the command and the load average before and after.

Run: ``python bench/chain.py [--events 100000] [--runs 3]``
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import statistics
import sys
import time
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from parse import _load, corpus, machine_info

from pipeline.chain import Chain, ChainConfig, Message

BATCH = 2000
SYSTEM = (
    "<14>Nov 27 10:00:00 fw-edge-01 1,2026/11/27 10:00:00,012801096514,SYSTEM,general,2562,"
    "2026/11/27 10:00:00,,general,,0,0,general,informational,{text},{seqno},0x0,0,0,0,0,,"
    "fw-edge-01,0,0,2026-11-27T10:00:00.000+00:00"
)


def messages(n: int) -> Iterator[bytes]:
    lines = corpus(n)
    for i, line in enumerate(itertools.islice(lines, n)):
        if i % 500 == 499:
            text = (
                f"Installed contents package: panupv2-all-contents-{i}.tgz"
                if i % 1000 == 999
                else "Connection to Update server closed: updates.paloaltonetworks.com"
            )
            yield SYSTEM.format(text=text, seqno=9_000_000 + i).encode()
        else:
            yield line


def measure(n: int, config: ChainConfig) -> tuple[float, int]:
    """(events per CPU-second, change points found) of the chain over ``n`` messages."""
    chain = Chain(config)
    state: dict = {}
    versions: dict = {}
    batch: list[Message] = []
    found = 0
    spent = 0.0

    def run() -> None:
        nonlocal found, spent
        started = time.process_time()
        try:
            result = chain.run(batch, state, 0.0, versions)
            versions.update(result.versions)
        except TypeError:  # a chain without versions
            result = chain.run(batch, state, 0.0)
        spent += time.process_time() - started
        found += len(getattr(result, "changes", ()))
        batch.clear()

    for value in messages(n):
        batch.append(Message(value))
        if len(batch) >= BATCH:
            run()
    if batch:
        run()
    return n / spent, found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    print(f"command: python {' '.join(sys.argv)}")
    print(f"machine: {machine_info()}; measured on one core")
    print(f"load average (1, 5, 15 min) before: {_load()}")
    with_changes = ChainConfig(event_time=True)
    fields = {f.name for f in dataclasses.fields(ChainConfig)}
    without = ChainConfig(event_time=True, changes=False) if "changes" in fields else None
    measure(5_000, with_changes)  # warm up: layouts, caches
    rates, bare = [], []
    for i in range(1, args.runs + 1):
        rate, found = measure(args.events, with_changes)
        rates.append(rate)
        line = f"run {i}: {args.events} messages, {rate:,.0f} events per CPU-second"
        if without is not None:
            other, _ = measure(args.events, without)
            bare.append(other)
            line += f" ({found} change points); without change points {other:,.0f}"
        print(line)
    print(f"median: {statistics.median(rates):,.0f} events per CPU-second")
    if bare:
        cost = 1 / statistics.median(rates) - 1 / statistics.median(bare)
        print(
            f"median without change points: {statistics.median(bare):,.0f} events per "
            f"CPU-second; change points and versions cost {cost * 1e6:.2f} us per event"
        )
    print(f"load average (1, 5, 15 min) after: {_load()}")


if __name__ == "__main__":
    main()
