"""The HTML report of ``decryptscope analyze --html`` in headless Chromium: every section
there and faithful to the report's JSON (the chart's bars included), the counts those the
demo traffic's own comments announce, no request beyond the file itself (the browser's
network is off and every request is logged), no script error, a screenshot that is not blank,
the legend's script working. Once for the demo traffic, once for 100,000 lines of it."""

from __future__ import annotations

import re
import subprocess
import sys
from collections import defaultdict
from html.parser import HTMLParser
from pathlib import Path

import orjson
import pytest
from chromium import chromium, open_page, screenshot, spread
from traffic import SAMPLE, expected_sessions, scaled

pytestmark = pytest.mark.browser

SECTIONS = (
    "Summary",
    "Failures over time by cause",
    "Failures by cause",
    "Failures by decryption mode",
    "Change points: failures before and after",
    "Decryption coverage",
    "Certificates that will break decryption",
    "Causes in detail: where and what to do",
    "Recommendations: what to change, with the evidence",
)
_REMOTE = re.compile(r"^\s*(?:https?:)?//", re.IGNORECASE)


def analyze(log: Path, folder: Path) -> tuple[Path, dict]:
    """``decryptscope analyze LOG --html`` as an operator runs it: the page and the JSON."""
    page = folder / "report.html"
    done = subprocess.run(
        [sys.executable, "-m", "pipeline", "analyze", str(log), "--html", str(page), "--json"],
        capture_output=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    return page, orjson.loads(done.stdout)


class _Fetches(HTMLParser):
    """Attributes in the page source that make a browser fetch something remote (a link to
    follow is not a fetch)."""

    def __init__(self) -> None:
        super().__init__()
        self.remote: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            return
        for name, value in attrs:
            if name in {"src", "href", "data", "xlink:href", "srcset", "poster", "action"} and (
                value and _REMOTE.match(value)
            ):
                self.remote.append(f"<{tag} {name}={value}>")

    def handle_data(self, data: str) -> None:
        # inline CSS and scripts: url(...), @import and fetch/XHR/imports to a remote address
        for found in re.findall(
            r"(?:url\(\s*['\"]?|@import\s+['\"]?|fetch\(\s*['\"]|import\s*\(\s*['\"])"
            r"((?:https?:)?//[^'\")\s]+)",
            data,
        ):
            self.remote.append(found)


def remote_references(html: str) -> list[str]:
    parser = _Fetches()
    parser.feed(html)
    return parser.remote


def check_page(driver, path: Path, report: dict, expected: dict[str, int]) -> dict:
    """Everything the page must be; returns what was read of it."""
    page = open_page(driver, path)
    dom = page.dom

    # nothing left the file: no request but the page, no resource, nothing remote in the source
    assert page.requests == [page.url]
    assert dom["resources"] == []
    assert dom["onLine"] is False
    assert remote_references(path.read_text(encoding="utf-8")) == []
    assert not [x for x in dom["fetching"] if re.search(r"=\"(?:https?:)?//", x)]
    assert not [x for x in dom["cssUrls"] if re.search(r"(?:https?:)?//", x)]
    assert page.console_errors == []

    # every section, each with content
    assert [heading for heading, _ in dom["sections"]] == list(SECTIONS)
    assert all(length > 20 for _, length in dom["sections"])

    # the figures: the JSON's, and the demo traffic's announced causes and session counts
    kpis = dict(dom["kpis"])
    assert int(kpis["failed sessions"]) == report["failures"]["sessions"]
    assert int(kpis["records analysed"]) == report["records"]
    assert int(kpis["distinct causes"]) == len(report["causes"])
    assert int(kpis["lines not parsed"]) == sum(report["parse_errors"].values())
    rows = {row[0].split()[0]: row for row in dom["causeRows"]}
    assert {cause: int(row[2]) for cause, row in rows.items()} == expected
    for cause in report["causes"]:
        row = rows[cause["cause"]]
        assert row[1] == cause["category"]
        assert row[3] == f"{cause['share'] * 100:.1f}%"
    assert [(r[0], int(r[1])) for r in dom["modeRows"]] == [
        (m["mode"], m["count"]) for m in report["modes"]
    ]
    assert dom["legend"] == [c["cause"] for c in report["causes"]]
    assert [d["id"] for d in dom["details"]] == [f"cause-{c['cause']}" for c in report["causes"]]
    for detail, cause in zip(dom["details"], report["causes"], strict=True):
        assert detail["title"] == cause["title"]
        first_step = next(p for p in cause["remediation"].splitlines() if p.strip())
        assert " ".join(first_step.split()) in " ".join(detail["fix"].split())
        assert detail["refs"] == cause["references"]

    recommended = report["recommendations"]
    assert [(r["id"], r["title"]) for r in dom["recs"]] == [
        (f"rec-{r['id']}", f"{r['kind']}: {r['subject']}") for r in recommended["recommendations"]
    ]
    tables = dict(dom["recTables"])
    held = tables.get("Held back from exclusion (short of the gate)", [])
    assert [row[0] for row in held] == [h["subject"] for h in recommended["held"]]
    declined = tables.get("Never excluded", [])
    assert [row[0] for row in declined] == [d["subject"] for d in recommended["declined"]]

    # the chart: per cause, its bars left to right are the JSON series' non-empty buckets;
    # bar heights are proportional to the counts
    series = report["timeline"]["series"]
    drawn = defaultdict(list)
    for bar in sorted(dom["bars"], key=lambda b: b["x"]):
        count = int(bar["title"].rsplit(": ", 1)[1])
        drawn[bar["cause"]].append(count)
    assert dict(drawn) == {c: [n for n in s if n] for c, s in series.items() if any(s)}
    scale = {round(b["height"] / int(b["title"].rsplit(": ", 1)[1]), 2) for b in dom["bars"]}
    assert max(scale) - min(scale) <= 0.1 * max(scale)
    buckets_drawn = {b["x"] for b in dom["bars"]}
    assert len(buckets_drawn) == sum(1 for i in range(len(report["timeline"]["buckets"]))
                                     if any(s[i] for s in series.values()))  # fmt: skip
    assert all(b["shown"] for b in dom["bars"])

    # the legend's script: a click hides that cause's bars, a second click shows them again
    first = report["causes"][0]["cause"]
    button = driver.find_element("css selector", f'#legend button[data-cause="{first}"]')
    button.click()
    hidden = driver.execute_script(
        "return [...document.querySelectorAll('svg rect[data-cause]')]"
        ".filter(r => r.getBoundingClientRect().height === 0).map(r => r.dataset.cause)"
    )
    assert hidden and set(hidden) == {first} and len(hidden) == len(drawn[first])
    button.click()
    assert driver.execute_script(
        "return [...document.querySelectorAll('svg rect')].every("
        "r => r.getBoundingClientRect().height > 0 || +r.getAttribute('height') === 0)"
    )

    # what it looks like: not blank (an empty page, the control, is)
    image = screenshot(driver, min(dom["scrollHeight"], 4000))
    assert image.size[0] >= 1000 and image.size[1] >= 1000
    assert spread(image) > 20, "the screenshot is blank"
    colours = image.resize((320, 320)).getcolors(maxcolors=320 * 320)
    assert colours is not None and len(colours) > 50
    return dom


def test_a_blank_page_reads_as_blank(tmp_path) -> None:
    # the control for the screenshot check below
    blank = tmp_path / "blank.html"
    blank.write_text("<!DOCTYPE html><html><body></body></html>")
    with chromium() as driver:
        page = open_page(driver, blank)
        assert page.requests == [page.url]
        assert spread(screenshot(driver, 1000)) < 1.0


def test_the_demo_report_renders_whole_and_offline(tmp_path) -> None:
    path, report = analyze(SAMPLE, tmp_path)
    lines = sum(1 for x in SAMPLE.read_text().splitlines() if x.strip() and x[0] != "#")
    with chromium() as driver:
        dom = check_page(driver, path, report, expected_sessions(lines))
    # what the sample's comments say of the exclusion gate: one destination passes, one does not
    assert "rec-exclusion:payments.example.com" in [r["id"] for r in dom["recs"]]
    held = dict(dom["recTables"])["Held back from exclusion (short of the gate)"]
    assert "legacy.example.net" in [row[0] for row in held]
    assert "payments.example.com" not in [row[0] for row in held]


def test_a_100000_event_report_renders_whole_and_offline(tmp_path) -> None:
    log = tmp_path / "traffic.log"
    events = 100_000
    with log.open("w") as out:
        for line in scaled(events):
            out.write(line + "\n")
    path, report = analyze(log, tmp_path)
    assert report["failures"]["sessions"] == sum(expected_sessions(events).values())
    assert len(report["timeline"]["buckets"]) > 20
    with chromium() as driver:
        check_page(driver, path, report, expected_sessions(events))
