"""``decryptscope stack up|down|status|fetch``: the local Kafka, Elasticsearch, Prometheus and
Alertmanager (``pipeline.stack``)."""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping, Sequence
from typing import Any

from pipeline.settings import Settings
from pipeline.stack import down, fetch, layout_for, say, select, status_rows, up


def format_table(rows: Sequence[Mapping[str, Any]]) -> str:
    columns = ("component", "version", "address", "pid", "health")
    cells = [[c.upper() for c in columns]]
    cells += [["-" if row.get(c) in (None, "") else str(row[c]) for c in columns] for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in cells
    )


# --- command --------------------------------------------------------------------------------
def run(args: argparse.Namespace, settings: Settings) -> int:
    names = select(getattr(args, "only", None))
    action = args.action
    if action == "fetch":
        layout = layout_for(settings)
        manifest = fetch.fetch(settings, layout, names, say)
        print(json.dumps({"cache_dir": str(layout.cache_dir), **manifest}, indent=2))
        return 0
    if action == "down":
        down(settings, names, purge=getattr(args, "purge", False))
        return 0
    rows = up(settings, names) if action == "up" else status_rows(settings, names)
    if getattr(args, "json", False):
        print(json.dumps(rows, indent=2))
    else:
        print(format_table(rows))
        if action == "up":
            print(f"logs: {layout_for(settings).cache_dir / 'logs'}")
    return 0 if all(row["healthy"] for row in rows) else 1
