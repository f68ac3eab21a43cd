"""Spike detection on decryption failures: the statistics, with no Kafka, Faust or clock.

Failures are counted in fixed windows of processing time (``alert_window_s``), per cause and per
(cause, server): each worker counts its own failures per window (``pipeline.wire.WindowCount``)
and the detector adds up the counts of every worker (``add``). A window closes ``grace_s``
after its end (time for the other workers' counts to arrive); then each count is compared with
its baseline, an exponentially weighted moving average and deviation of the earlier windows
(quiet windows count as zeros). Three kinds of alert:

* ``spike``: at least ``alert_min_count`` failures, at least ``alert_ratio`` times the baseline
  and more than ``alert_sigma`` deviations above it (per cause, and per cause and server);
* ``new_cause``: a cause not seen during the baseline period (``alert_baseline_windows``
  windows) fails at least ``alert_new_cause_min_count`` times in a window;
* ``new_server``: a known cause fails on a server not seen with it during the baseline period,
  at least ``alert_new_cause_min_count`` times in a window.

"New" needs history: those two kinds wait until this detector has watched one baseline period.
An alert does not repeat for ``alert_cooldown_windows`` windows.

A fourth kind, ``regression``, compares a cause's failures on one firewall before and after a
change point of that firewall (``add_change``: the change notices every worker sends; a
declared change without a firewall counts for all): each window's count of a cause carries its
failures per firewall, and when, within ``change_after_s`` of the firewall's latest change, the
failures since the change appeared or grew by ``change_growth_factor`` against the
``change_before_s`` before it (``pipeline.regression``), the alert names the change. Each
(change, cause, firewall) alerts once. Windows before the detector started are unknown, not
quiet: a change seen in the detector's first window is not compared.

The baseline of each cause is a JSON-serialisable dict (``export``/``restore``) so that the
stream agent can keep it in a changelogged table; counts of the open window live in memory.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pipeline.changes import rank as change_rank
from pipeline.regression import Criteria, verdict
from pipeline.wire import ChangeNotice, Failure, WindowCount

# A server label in an alert is at most this long after escaping.
MAX_TEXT = 300
TOP_N = 5
# After this many quiet windows a baseline is zero for any practical purpose.
_DECAY_LIMIT = 400
# Change notices kept per firewall, and (change, firewall) pairs remembered per cause as
# alerted.
_MAX_CHANGES = 64
_MAX_REGRESSED = 256

# Characters that stay as they are in alert text: enough for host names, IPs and rule names,
# nothing that a terminal, HTML, Markdown or a chat client would interpret.
_SAFE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_:/@ ")


def escape_text(value: object, limit: int = MAX_TEXT) -> str:
    """``value`` as text safe to show anywhere: every character outside a small safe set
    (control and format characters, markup, quotes, non-ASCII) becomes a ``\\xNN`` /
    ``\\uNNNN`` escape, and the result is cut at ``limit`` characters."""
    text = "" if value is None else str(value)
    out = []
    for ch in text:
        if ch in _SAFE:
            out.append(ch)
        elif ord(ch) < 0x100:
            out.append(f"\\x{ord(ch):02x}")
        elif ord(ch) < 0x10000:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(f"\\U{ord(ch):08x}")
    escaped = "".join(out)
    return escaped if len(escaped) <= limit else escaped[: limit - 3] + "..."


@dataclass(frozen=True)
class AlertConfig:
    window_s: int = 60
    baseline_windows: int = 30
    min_count: int = 20
    ratio: float = 3.0
    sigma: float = 4.0
    alpha: float = 0.2
    new_min_count: int = 5
    cooldown_windows: int = 10
    max_servers: int = 1000
    regression: Criteria = field(default_factory=Criteria)

    @classmethod
    def from_settings(cls, settings: Any) -> AlertConfig:
        return cls(
            regression=Criteria.from_settings(settings),
            window_s=settings.alert_window_s,
            baseline_windows=settings.alert_baseline_windows,
            min_count=settings.alert_min_count,
            ratio=settings.alert_ratio,
            sigma=settings.alert_sigma,
            alpha=settings.alert_ewma_alpha,
            new_min_count=settings.alert_new_cause_min_count,
            cooldown_windows=settings.alert_cooldown_windows,
            max_servers=settings.alert_max_servers,
        )


def top(counts: Mapping[str, int], n: int = TOP_N) -> list[dict[str, Any]]:
    """The ``n`` most frequent values of a count, escaped for display."""
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:n]
    return [{"value": escape_text(value), "count": count} for value, count in ranked]


def _new_baseline() -> dict[str, Any]:
    # mean/var: EWMA of counts per window; upto: last window folded in; last: last window with
    # failures; cool: kind -> first window it may alert again; servers: name -> same fields.
    return {"mean": 0.0, "var": 0.0, "upto": None, "last": None, "cool": {}, "servers": {}}


def _fold(base: dict[str, Any], window: int, count: int, alpha: float) -> None:
    """Fold the quiet windows since the last update, then ``count`` for ``window``."""
    mean, var, upto = base["mean"], base["var"], base["upto"]
    if upto is not None:
        quiet = window - upto - 1
        if quiet >= _DECAY_LIMIT:
            mean = var = 0.0
        else:
            for _ in range(max(quiet, 0)):
                diff = -mean
                incr = alpha * diff
                mean += incr
                var = (1 - alpha) * (var + diff * incr)
    diff = count - mean
    incr = alpha * diff
    base["mean"] = mean + incr
    base["var"] = (1 - alpha) * (var + diff * incr)
    base["upto"] = window
    if count:
        base["last"] = window


def _expected(base: dict[str, Any], window: int, alpha: float) -> tuple[float, float]:
    """Baseline mean and deviation as of just before ``window``."""
    mean, var, upto = base["mean"], base["var"], base["upto"]
    if upto is not None:
        quiet = window - upto - 1
        if quiet > 0:
            factor = (1 - alpha) ** min(quiet, _DECAY_LIMIT)
            mean *= factor
            var *= factor
    return mean, math.sqrt(max(var, 0.0))


class SpikeDetector:
    """Adds up window counts and returns the alerts of each window as it closes.

    ``load(cause)`` gives a baseline saved earlier (or None); ``pending()`` tells which causes'
    baselines changed since they were last saved with ``export``. ``grace_s``: how long after
    its end a window waits for counts of other workers before it is evaluated."""

    def __init__(
        self,
        config: AlertConfig,
        load: Callable[[str], Mapping[str, Any] | None] | None = None,
        *,
        grace_s: float = 0.0,
    ) -> None:
        self.config = config
        self.grace_s = grace_s
        self._load = load
        self._baselines: dict[str, dict[str, Any]] = {}
        self._open: dict[int, dict[str, WindowCount]] = {}
        self._closed_upto: int | None = None  # every window up to this one is evaluated
        self._started: int | None = None
        self._dirty: set[str] = set()
        self.late = 0  # counts that arrived after their window was evaluated
        self._changes: dict[str, list[ChangeNotice]] = {}  # firewall ("" = all) -> notices

    # -- input ---------------------------------------------------------------------------

    def window_of(self, now: float) -> int:
        return int(now // self.config.window_s)

    def add(self, count: WindowCount) -> None:
        """Add one worker's count of a cause in a window."""
        window = count.window
        if self._closed_upto is not None and window <= self._closed_upto:
            self.late += count.count
            return
        if self._started is None or window < self._started:
            self._started = window
        causes = self._open.setdefault(window, {})
        mine = causes.get(count.cause)
        if mine is None:
            causes[count.cause] = mine = WindowCount(count.cause, window, count.window_s)
        mine.merge(count)

    def add_change(self, notice: ChangeNotice) -> None:
        """Add a change point some worker saw (a notice seen twice counts once)."""
        notices = self._changes.setdefault(notice.firewall, [])
        if any(n.id == notice.id for n in notices):
            return
        notices.append(notice)
        notices.sort(key=lambda n: n.seen)
        del notices[:-_MAX_CHANGES]

    def observe(self, failure: Failure, now: float) -> list[dict[str, Any]]:
        """Count one failure at time ``now`` (epoch seconds); returns the alerts of any window
        this closed. (A single process's shortcut for ``add`` + ``tick``.)"""
        alerts = self.tick(now)
        count = WindowCount(failure.cause, self.window_of(now), self.config.window_s)
        count.add(failure)
        self.add(count)
        return alerts

    def tick(self, now: float) -> list[dict[str, Any]]:
        """Evaluate every window that ended at least ``grace_s`` before ``now``; returns their
        alerts, oldest window first."""
        current = self.window_of(now - self.grace_s)
        if self._started is None:
            self._started = current
        alerts: list[dict[str, Any]] = []
        for window in sorted(w for w in self._open if w < current):
            for cause, count in self._open.pop(window).items():
                alerts.extend(self._close(cause, count, window))
        if self._closed_upto is None or current - 1 > self._closed_upto:
            self._closed_upto = current - 1
        return alerts

    def pending(self) -> frozenset[str]:
        """Causes whose baseline changed since it was last exported."""
        return frozenset(self._dirty)

    def export(self, cause: str) -> dict[str, Any] | None:
        """The baseline of ``cause`` as plain JSON-serialisable data."""
        self._dirty.discard(cause)
        base = self._baselines.get(cause)
        return None if base is None else dict(base)

    # -- evaluation ----------------------------------------------------------------------

    def _baseline(self, cause: str) -> dict[str, Any] | None:
        base = self._baselines.get(cause)
        if base is None and self._load is not None:
            saved = self._load(cause)
            if saved:
                base = _new_baseline()
                base.update(saved)
                base["cool"] = dict(base.get("cool") or {})
                base["servers"] = {k: dict(v) for k, v in (base.get("servers") or {}).items()}
                self._baselines[cause] = base
        return base

    def _seen_recently(self, base: dict[str, Any] | None, window: int) -> bool:
        return (
            base is not None
            and base.get("last") is not None
            and window - base["last"] <= self.config.baseline_windows
        )

    def _cooling(self, base: dict[str, Any], key: str, window: int) -> bool:
        until = base["cool"].get(key)
        return until is not None and window < until

    def _close(self, cause: str, win: WindowCount, window: int) -> list[dict[str, Any]]:
        cfg = self.config
        started = window if self._started is None else self._started
        warm = window - started >= cfg.baseline_windows
        base = self._baseline(cause)
        cause_known = self._seen_recently(base, window)
        if base is None:
            base = self._baselines[cause] = _new_baseline()
        alerts: list[dict[str, Any]] = []
        mean, dev = _expected(base, window, cfg.alpha)
        if not cause_known:
            if (
                warm
                and win.count >= cfg.new_min_count
                and not self._cooling(base, "new_cause", window)
            ):
                alerts.append(self._alert("new_cause", cause, "", win, window, mean=mean, dev=dev))
                base["cool"]["new_cause"] = window + cfg.cooldown_windows
        elif self._is_spike(win.count, mean, dev) and not self._cooling(base, "spike", window):
            alerts.append(self._alert("spike", cause, "", win, window, mean=mean, dev=dev))
            base["cool"]["spike"] = window + cfg.cooldown_windows
        _fold(base, window, win.count, cfg.alpha)
        alerts.extend(self._close_servers(cause, base, win, window, cause_known and warm))
        alerts.extend(self._regressions(cause, base, win, window))
        self._dirty.add(cause)
        return alerts

    def _latest_change(self, firewall: str, window: int, after: int) -> ChangeNotice | None:
        """The firewall's latest change (or a change of every firewall) at most ``after``
        windows before ``window``."""
        best, best_key = None, None
        for notices in (self._changes.get(firewall, ()), self._changes.get("", ())):
            for notice in notices:
                seen = self.window_of(notice.seen)
                if not (seen <= window and window - seen < after):
                    continue
                # the latest; of several at one moment, the one that explains most
                key = (notice.seen, change_rank(notice.kind))
                if best_key is None or key > best_key:
                    best, best_key = notice, key
        return best

    def _regressions(
        self, cause: str, base: dict[str, Any], win: WindowCount, window: int
    ) -> list[dict[str, Any]]:
        cfg = self.config
        crit = cfg.regression
        before_n = max(1, math.ceil(crit.before_s / cfg.window_s))
        after_n = max(1, math.ceil(crit.after_s / cfg.window_s))
        keep_from = window - before_n - after_n
        history: dict[str, list[list[int]]] = base.setdefault("firewalls", {})
        for firewall, count in win.firewalls.items():
            series = [e for e in history.get(firewall, ()) if e[0] >= keep_from and e[0] != window]
            series.append([window, count])
            history[firewall] = series
        for firewall in [f for f, series in history.items() if series[-1][0] < keep_from]:
            del history[firewall]
        if len(history) > cfg.max_servers:
            ranked = sorted(history, key=lambda f: history[f][-1][0])
            for firewall in ranked[: len(history) - cfg.max_servers]:
                del history[firewall]
        if not self._changes:
            return []
        started = window if self._started is None else self._started
        done: list[str] = base.setdefault("regressed", [])
        alerts = []
        for firewall in win.firewalls:
            change = self._latest_change(firewall, window, after_n)
            if change is None or f"{change.id}|{firewall}" in done:
                continue
            changed = self.window_of(change.seen)
            first = max(changed - before_n, started)
            if first >= changed:
                continue  # the detector did not watch this firewall before the change
            counts = history.get(firewall, ())
            before = sum(n for w, n in counts if first <= w < changed)
            after = sum(n for w, n in counts if changed <= w <= window)
            windows_before, windows_after = changed - first, window - changed + 1
            flag = verdict(before, before / windows_before, after, after / windows_after, crit)
            if flag is None:
                continue
            done.append(f"{change.id}|{firewall}")
            del done[:-_MAX_REGRESSED]
            alerts.append(
                build_alert(
                    kind="regression",
                    cause=cause,
                    server="",
                    category=win.category,
                    mode=win.mode,
                    remediation=win.remediation,
                    window_start=window * cfg.window_s,
                    window_s=cfg.window_s,
                    observed=after,
                    expected=before * windows_after / windows_before,
                    deviation=0.0,
                    top_servers=top(win.servers),
                    top_rules=top(win.rules),
                    top_sources=top(win.sources),
                    samples=list(win.samples),
                    firewall=firewall,
                    change={
                        "id": change.id,
                        "kind": change.kind,
                        "firewall": change.firewall or firewall,
                        "name": change.name,
                        "time": change.time,
                        "summary": change.summary,
                    },
                    comparison={
                        "verdict": flag,
                        "before": {"failures": before, "windows": windows_before},
                        "after": {"failures": after, "windows": windows_after},
                    },
                )
            )
        return alerts

    def _is_spike(self, count: int, mean: float, dev: float) -> bool:
        cfg = self.config
        return (
            count >= cfg.min_count and count >= cfg.ratio * mean and count > mean + cfg.sigma * dev
        )

    def _close_servers(
        self, cause: str, base: dict[str, Any], win: WindowCount, window: int, may_be_new: bool
    ) -> list[dict[str, Any]]:
        cfg = self.config
        servers: dict[str, dict[str, Any]] = base["servers"]
        alerts: list[dict[str, Any]] = []
        for server, count in win.servers.items():
            sbase = servers.get(server)
            known = self._seen_recently(sbase, window)
            if sbase is None:
                sbase = servers[server] = {"mean": 0.0, "var": 0.0, "upto": None, "last": None}
            mean, dev = _expected(sbase, window, cfg.alpha)
            until = sbase.get("cool")
            cooling = until is not None and window < until
            if not cooling:
                kind = None
                if not known:
                    if may_be_new and count >= cfg.new_min_count:
                        kind = "new_server"
                elif self._is_spike(count, mean, dev):
                    kind = "spike"
                if kind is not None:
                    alerts.append(
                        self._alert(
                            kind, cause, server, win, window, mean=mean, dev=dev, count=count
                        )
                    )
                    sbase["cool"] = window + cfg.cooldown_windows
            _fold(sbase, window, count, cfg.alpha)
        if len(servers) > cfg.max_servers:
            # Forget the servers that failed longest ago.
            ranked = sorted(servers, key=lambda s: servers[s].get("last") or -1)
            for server in ranked[: len(servers) - cfg.max_servers]:
                del servers[server]
        return alerts

    def _alert(
        self,
        kind: str,
        cause: str,
        server: str,
        win: WindowCount,
        window: int,
        *,
        mean: float,
        dev: float,
        count: int | None = None,
    ) -> dict[str, Any]:
        return build_alert(
            kind=kind,
            cause=cause,
            server=server,
            category=win.category,
            mode=win.mode,
            remediation=win.remediation,
            window_start=window * self.config.window_s,
            window_s=self.config.window_s,
            observed=win.count if count is None else count,
            expected=mean,
            deviation=dev,
            top_servers=top(win.servers),
            top_rules=top(win.rules),
            top_sources=top(win.sources),
            samples=list(win.samples),
        )


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat()


def _iso_text(value: object) -> str:
    """An ISO 8601 time in UTC, "" when ``value`` is none (a date field of the alerts index)."""
    try:
        when = datetime.fromisoformat(str(value))
    except ValueError:
        return ""
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).astimezone(UTC).isoformat()


_KIND_TEXT = {
    "spike": "spike of decryption failures",
    "new_cause": "new decryption failure cause",
    "new_server": "new server failing decryption",
    "regression": "decryption failures rose after a change",
}


def build_alert(
    *,
    kind: str,
    cause: str,
    server: str,
    category: str,
    mode: str,
    remediation: str,
    window_start: float,
    window_s: int,
    observed: int,
    expected: float,
    deviation: float,
    top_servers: list[dict[str, Any]],
    top_rules: list[dict[str, Any]],
    top_sources: list[dict[str, Any]],
    samples: list[str],
    firewall: str = "",
    change: Mapping[str, Any] | None = None,
    comparison: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The alert document published on the alerts topic and indexed into Elasticsearch; a
    ``regression`` names its firewall, the change and the counts compared."""
    safe_cause = escape_text(cause)
    safe_server = escape_text(server)
    where = f" on {safe_server}" if server else ""
    message = (
        f"{_KIND_TEXT.get(kind, kind)}: {safe_cause}{where}: {observed} failures in "
        f"{window_s}s, expected {expected:.1f}"
    )
    ident = f"{kind}:{safe_cause}:{safe_server}:{int(window_start)}"
    extra: dict[str, Any] = {}
    if change is not None:
        safe_change = {k: escape_text(v) for k, v in change.items() if k != "time"}
        safe_change["time"] = _iso_text(change.get("time"))
        safe_firewall = escape_text(firewall)
        who = safe_change.get("name") or safe_firewall
        before = (comparison or {}).get("before", {})
        after = (comparison or {}).get("after", {})
        message = (
            f"{_KIND_TEXT.get(kind, kind)}: {safe_cause} on {who} after {safe_change['kind']} "
            f"at {safe_change['time']} ({safe_change['summary']}): {after.get('failures')} "
            f"failures in {after.get('windows')} windows of {window_s}s since, "
            f"{before.get('failures')} in the {before.get('windows')} before"
        )
        ident = f"{kind}:{safe_cause}:{safe_firewall}:{safe_change['id']}"
        extra = {"firewall": safe_firewall, "change": safe_change, **dict(comparison or {})}
    severity = "critical" if kind in ("spike", "regression") and not server else "warning"
    return {
        "id": ident,
        "@timestamp": _iso(window_start + window_s),
        "kind": kind,
        "severity": severity,
        "cause": safe_cause,
        "category": category,
        "mode": mode,
        "server": safe_server,
        "remediation": remediation,
        "message": message,
        "window": {
            "start": _iso(window_start),
            "end": _iso(window_start + window_s),
            "seconds": window_s,
        },
        "observed": observed,
        "expected": round(expected, 3),
        "deviation": round(deviation, 3),
        "top_servers": top_servers,
        "top_rules": top_rules,
        "top_sources": top_sources,
        "sample_event_ids": samples,
        **extra,
    }


def change_alert(change: Any) -> dict[str, Any]:
    """The alert a change point raises at once (``pipeline.changes.ChangePoint`` with an
    ``alert`` severity): a SYSTEM ``cert-expiry`` says a certificate of the firewall has
    expired, and every decryption that needs it fails from now on."""
    kind = change.kind.replace("-", "_")
    safe = {
        "id": escape_text(change.id),
        "kind": escape_text(change.kind),
        "firewall": escape_text(change.firewall),
        "name": escape_text(change.name),
        "time": change.time.astimezone(UTC).isoformat(),
        "summary": escape_text(change.summary),
    }
    who = safe["name"] or safe["firewall"]
    return {
        "id": f"{kind}:{safe['id']}",
        "@timestamp": change.time.astimezone(UTC).isoformat(),
        "kind": kind,
        "severity": change.alert,
        "cause": "",
        "category": "",
        "mode": "",
        "server": "",
        "firewall": safe["firewall"],
        "remediation": change.remediation,
        "message": f"{safe['summary']} on {who}" if who else safe["summary"],
        "change": safe,
    }
