"""Headless Chromium for the report tests and ``bench/report.py``: Debian's ``chromium`` driven
through Debian's ``chromedriver`` (the same source package, so their versions always match)
with Selenium, nothing downloaded at test time.

``open_page`` loads a file with the network switched off in the browser (DevTools network
emulation) and returns what the page is made of, read from the live DOM after its scripts ran,
with every request the page made (Chromium's performance log) and its timings.
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Without the background-networking flags Chromium keeps calling home, which a closed network
# refuses; --no-sandbox: root in CI; a new empty profile each time.
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
)
WIDTH = 1280


def _tool(name: str, package: str) -> str:
    path = shutil.which(name) or (f"/usr/bin/{name}" if Path(f"/usr/bin/{name}").exists() else "")
    assert path, f"{name} is not installed (apt-get install {package})"
    return path


@contextlib.contextmanager
def chromium(height: int = 1000) -> Iterator[Any]:
    """A Selenium driver for headless Chromium, ``WIDTH`` x ``height``, quit at the end."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = _tool("chromium", "chromium")
    profile = tempfile.mkdtemp(prefix="decryptscope-chromium-")
    for flag in (*FLAGS, f"--window-size={WIDTH},{height}", f"--user-data-dir={profile}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    service = Service(executable_path=_tool("chromedriver", "chromium-driver"))
    driver = webdriver.Chrome(options=options, service=service)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


# Read in the page once it has loaded: what each check needs, as plain data.
_INSPECT = """
const text = e => (e ? e.textContent.trim() : null);
const rows = table => (table ? [...table.rows].slice(1) : [])
  .map(r => [...r.cells].map(c => c.innerText.trim()));
const byHeading = {};
for (const s of document.querySelectorAll('main > section')) {
  byHeading[text(s.querySelector('h2'))] = s;
}
const RECS = 'Recommendations: what to change, with the evidence';
const fetchers = 'script[src], link[href], img, iframe, source, video, audio, object, embed, '
  + 'image, use, input[src]';
const cssUrls = [];
for (const sheet of document.styleSheets) {
  let rules;
  try { rules = [...sheet.cssRules]; } catch (e) {
    cssUrls.push('stylesheet ' + sheet.href);  // another origin's: unreadable
    continue;
  }
  for (const rule of rules) {
    if (/url\\(|@import/.test(rule.cssText)) cssUrls.push(rule.cssText);
  }
}
const nav = performance.getEntriesByType('navigation')[0];
return {
  sections: Object.entries(byHeading).map(([h, s]) => [h, s.innerText.length]),
  kpis: [...document.querySelectorAll('.kpi')].map(k => [text(k.querySelector('span')),
                                                         text(k.querySelector('b'))]),
  causeRows: rows(byHeading['Failures by cause']?.querySelector('table')),
  modeRows: rows(byHeading['Failures by decryption mode']?.querySelector('table')),
  legend: [...document.querySelectorAll('#legend button')].map(b => b.dataset.cause),
  details: [...document.querySelectorAll('div.cause[id^="cause-"]')].map(d => ({
    id: d.id, title: text(d.querySelector('h3')), fix: text(d.querySelector('.fix')),
    refs: [...d.querySelectorAll('.refs a')].map(a => a.getAttribute('href'))})),
  recs: [...document.querySelectorAll('.rec')].map(r => ({id: r.id,
                                                         title: text(r.querySelector('h3'))})),
  recTables: [...(byHeading[RECS]?.querySelectorAll('h3') || [])]
    .filter(h => h.nextElementSibling && h.nextElementSibling.tagName === 'TABLE')
    .map(h => [text(h), rows(h.nextElementSibling)]),
  bars: [...document.querySelectorAll('svg rect[data-cause]')].map(r => ({
    cause: r.dataset.cause, x: +r.getAttribute('x'), height: +r.getAttribute('height'),
    title: text(r.querySelector('title')), shown: r.getBoundingClientRect().height > 0})),
  fetching: [...document.querySelectorAll(fetchers)].map(e => e.outerHTML.slice(0, 200)),
  cssUrls: cssUrls,
  resources: performance.getEntriesByType('resource').map(e => e.name),
  timing: {loadEventEnd: nav.loadEventEnd, domContentLoaded: nav.domContentLoadedEventEnd},
  scrollHeight: document.documentElement.scrollHeight,
  onLine: navigator.onLine,
};
"""


@dataclass
class Page:
    url: str
    dom: dict[str, Any]
    requests: list[str]  # every URL the browser requested for the page
    console_errors: list[str]
    load_s: float  # wall clock of the navigation, as the test driver saw it


def open_page(driver: Any, path: Path) -> Page:
    """Load ``path`` with the network off and read the page."""
    driver.execute_cdp_cmd("Network.enable", {})
    driver.execute_cdp_cmd(
        "Network.emulateNetworkConditions",
        {"offline": True, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1},
    )
    driver.get_log("performance")  # what the browser did before: not this page's
    url = path.resolve().as_uri()
    started = time.perf_counter()
    driver.get(url)
    load_s = time.perf_counter() - started
    dom = driver.execute_script(_INSPECT)
    requests = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            requests.append(message["params"]["request"]["url"])
    errors = [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    return Page(url, dom, requests, errors, load_s)


def first_contentful_paint_ms(driver: Any, timeout_s: float = 5.0) -> float | None:
    """When the page first painted content, in ms from the navigation start (the entry may
    come after the load event: poll for it)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = driver.execute_script(
            "const p = performance.getEntriesByType('paint')"
            ".find(e => e.name === 'first-contentful-paint'); return p ? p.startTime : null;"
        )
        if found is not None:
            return float(found)
        time.sleep(0.05)
    return None


def screenshot(driver: Any, height: int) -> Any:
    """The page as a Pillow image, ``WIDTH`` x ``height`` CSS pixels from the top."""
    from PIL import Image

    driver.set_window_size(WIDTH, height)
    return Image.open(io.BytesIO(driver.get_screenshot_as_png())).convert("RGB")


def spread(image: Any) -> float:
    """Standard deviation of the grey levels: 0 for a blank page."""
    from PIL import ImageStat

    return ImageStat.Stat(image.convert("L")).stddev[0]
