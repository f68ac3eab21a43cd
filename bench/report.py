"""The HTML report of a large input: how long ``decryptscope analyze --html`` takes, how big the
page is, and how long headless Chromium takes to render it.

The input is the demo traffic repeated (``tests/browser/traffic.py``: every copy with its own
session ids and sequence numbers, 30 s of firewall time later than the one before). Analysis
is the command an operator runs (``python -m pipeline analyze FILE --html PAGE``, wall clock,
generating the input not counted). Rendering is timed in Debian's Chromium, a new browser and
profile for each run, the network off: the browser's own navigation timing (DOMContentLoaded,
first contentful paint, load event end, from the start of the navigation) and the wall clock
of the WebDriver ``get`` that waits for the load event. Each figure is the median of
``--runs``. Needs chromium and chromium-driver (Debian). Usage:

    python bench/report.py [--events 100000] [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "browser")]  # this tree's pipeline

from chromium import chromium, first_contentful_paint_ms, open_page  # noqa: E402
from traffic import scaled  # noqa: E402


def machine_info() -> str:
    model = platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            model = next(
                (line.split(":", 1)[1].strip() for line in fh if line.startswith("model name")),
                model,
            )
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} cores, {platform.system()} {platform.machine()}"


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def _chromium_version() -> str:
    done = subprocess.run(["chromium", "--version"], capture_output=True, text=True, check=False)
    return done.stdout.strip() or "chromium (version unknown)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=100_000, help="log lines of input")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args(argv)
    print(f"command: python {' '.join(sys.argv)}")
    print(f"machine: {machine_info()}; {_chromium_version()}")
    print(f"load average (1, 5, 15 min) before: {_load()}")
    with tempfile.TemporaryDirectory(prefix="decryptscope-report-bench-") as folder:
        log = Path(folder) / "traffic.log"
        with log.open("w") as out:
            for line in scaled(args.events):
                out.write(line + "\n")
        input_bytes = log.stat().st_size
        page = Path(folder) / "report.html"
        analyze_s = []
        for _ in range(args.runs):
            started = time.perf_counter()
            subprocess.run(
                [sys.executable, "-m", "pipeline", "analyze", str(log), "--html", str(page)],
                cwd=ROOT,
                check=True,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            analyze_s.append(time.perf_counter() - started)
        size = page.stat().st_size
        timings: dict[str, list[float]] = {"dcl": [], "fcp": [], "load": [], "get": []}
        elements = bars = 0
        for _ in range(args.runs):
            with chromium() as driver:
                rendered = open_page(driver, page)
                assert rendered.requests == [rendered.url], rendered.requests
                timing = rendered.dom["timing"]
                timings["dcl"].append(timing["domContentLoaded"])
                paint = first_contentful_paint_ms(driver)
                if paint is not None:
                    timings["fcp"].append(paint)
                timings["load"].append(timing["loadEventEnd"])
                timings["get"].append(rendered.load_s * 1000)
                bars = len(rendered.dom["bars"])
                elements = driver.execute_script("return document.getElementsByTagName('*').length")
    med = {k: statistics.median(v) if v else float("nan") for k, v in timings.items()}
    print(f"input: {args.events:,} log lines, {input_bytes / 2**20:.1f} MiB")
    print(f"analyze --html: {statistics.median(analyze_s):.2f} s (median of {args.runs})")
    print(f"page: {size:,} bytes ({size / 1024:.0f} KiB), {elements:,} elements, {bars:,} bars")
    print(
        f"render (median of {args.runs}, ms from navigation start): DOMContentLoaded "
        f"{med['dcl']:.0f}, first contentful paint {med['fcp']:.0f}, load event end "
        f"{med['load']:.0f}; WebDriver get {med['get']:.0f}"
    )
    print(f"load average (1, 5, 15 min) after: {_load()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
