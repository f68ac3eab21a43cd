"""The fault scenarios of ``tests/faults`` at volume, on a stack of their own.

Starts a Kafka broker and an Elasticsearch node on a free block of ports with their own cache
dir (the stack on the default ports is not touched), runs each scenario with ``--events``
uniquely numbered events sent over TCP at ``--rate`` per second, breaks something a third of
the way (half for the SIGTERM), repairs it, and prints one row per scenario: events sent,
indexed, dead-lettered, missing, duplicated, and the time from the fault until every event sent
was searchable. Needs the artifacts ``decryptscope stack fetch`` downloads. Usage:

    python bench/faults.py [--events 200000] [--rate 3000] [--only kafka-kill ...]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "faults"))
sys.path.insert(0, str(ROOT))

import scenarios  # noqa: E402
from harness import FAULT_COMPONENTS, fault_stack_settings  # noqa: E402

from pipeline import stack as stack_mod  # noqa: E402
from pipeline.settings import load_settings  # noqa: E402

COLUMNS = ("scenario", "sent", "indexed", "dead-lettered", "missing", "duplicated", "recover s")


def row(result: scenarios.Result) -> list[str]:
    out = result.outcome
    return [
        result.scenario,
        f"{out.sent:,}",
        f"{out.indexed:,}",
        f"{out.dead_lettered:,}",
        f"{out.missing:,}",
        f"{out.duplicated + out.unexpected:,}",
        f"{result.recover_s:.0f}",
    ]


def table(rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--rate", type=float, default=3000.0, help="events sent per second")
    parser.add_argument("--es-down", type=float, default=60.0, help="seconds ES stays stopped")
    parser.add_argument("--only", action="append", choices=sorted(scenarios.SCENARIOS))
    args = parser.parse_args(argv)
    names = args.only or list(scenarios.SCENARIOS)
    base = load_settings()
    work = Path(tempfile.mkdtemp(prefix="decryptscope-faults-"))
    own = fault_stack_settings(base, work / "stack", first_offset=31_000)
    print(f"fault stack: Kafka {own.kafka_bootstrap}, Elasticsearch {own.es_url}", flush=True)
    rows: list[list[str]] = []
    failed = 0
    try:
        stack_mod.up(own, list(FAULT_COMPONENTS), say=lambda m: print(f"stack: {m}", flush=True))
        for name in names:
            started = time.monotonic()
            print(f"\n== {name}: {args.events:,} events at {args.rate:,.0f}/s", flush=True)
            run = scenarios.SCENARIOS[name]
            kwargs = {"down_s": args.es_down} if name == "es-stop" else {}
            try:
                result = run(own, work / name, args.events, args.rate, **kwargs)
            except Exception:
                failed += 1
                traceback.print_exc()
                rows.append([name, f"{args.events:,}", "failed: see above", "", "", "", ""])
                continue
            rows.append(row(result))
            print(f"   {result.notes}  ({time.monotonic() - started:.0f} s)", flush=True)
            print(table(rows[-1:]), flush=True)
    finally:
        stack_mod.down(own, list(FAULT_COMPONENTS), purge=True, say=lambda _m: None)
    print("\n" + table(rows))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
