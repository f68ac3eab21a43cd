"""The ``analyze`` report's change points: for each firewall and change, the failure rate and
the share of TLS sessions per cause in a window before and after it, with the causes that
appeared or grew flagged (pure; ``pipeline.regression`` holds the rule).

Change points come from the chain's change documents and from the declared changes (a change
declared without a serial applies to every firewall in the logs). Changes of one kind on one
firewall closer together than ``merge_s`` are one, at the time of the last (a commit shows as a
CONFIG row, then as SYSTEM lines), and a change's window after it ends at the firewall's next
change. The comparison uses the share of the firewall's TLS sessions
when both windows hold TLS sessions that did not fail (TRAFFIC ends, or successful DECRYPTION
logs); when the logs hold only failures, failures per hour over the part of each window the
firewall's logs cover.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from pipeline.chain import Document
from pipeline.changes import ChangePoint
from pipeline.panos.values import record_time
from pipeline.regression import Criteria, growth, verdict

HOUR_S = 3600.0


def merge(points: Iterable[ChangePoint], merge_s: float) -> list[tuple[ChangePoint, int]]:
    """(change, how many were merged into it), oldest first."""
    by_key: dict[tuple[str, str], list[ChangePoint]] = {}
    for point in sorted(points, key=lambda p: p.time):
        by_key.setdefault((point.firewall, point.kind), []).append(point)
    out: list[tuple[ChangePoint, int]] = []
    for group in by_key.values():
        current, count = group[0], 1
        for point in group[1:]:
            if (point.time - current.time).total_seconds() <= merge_s:
                first_from = current.version_from
                current = replace(point, version_from=first_from or point.version_from)
                count += 1
            else:
                out.append((current, count))
                current, count = point, 1
        out.append((current, count))
    return sorted(out, key=lambda pc: (pc[0].time, pc[0].firewall, pc[0].kind))


class BeforeAfter:
    """Collects change points and the time span each firewall's logs cover."""

    def __init__(
        self, criteria: Criteria, merge_s: float, declared: Iterable[ChangePoint] = ()
    ) -> None:
        self.criteria = criteria
        self.merge_s = merge_s
        self.points: list[ChangePoint] = list(declared)
        self.span: dict[str, tuple[datetime, datetime]] = {}
        self.names: dict[str, str] = {}

    def add(self, doc: Document) -> None:
        if doc.change is not None:
            self.points.append(doc.change)
            return
        record = doc.record
        serial = record.get("serial")
        if not serial:
            return
        when = record_time(record)
        if when is not None:
            span = self.span.get(serial)
            if span is None:
                self.span[serial] = (when, when)
            elif when < span[0] or when > span[1]:
                self.span[serial] = (min(span[0], when), max(span[1], when))
        if serial not in self.names and record.get("device_name"):
            self.names[serial] = str(record["device_name"])

    def _expanded(self) -> list[ChangePoint]:
        """Every change point with its firewall (a declared change of every firewall becomes
        one per firewall the logs show) and its firewall's name."""
        out = []
        for point in self.points:
            targets = [point.firewall] if point.firewall else sorted(self.span) or [""]
            for serial in targets:
                name = point.name or self.names.get(serial, "")
                out.append(replace(point, firewall=serial, name=name))
        return out

    def report(
        self,
        sessions: Iterable[tuple[str, datetime | None]],
        failures: Iterable[tuple[str, datetime | None, str]],
    ) -> dict[str, Any]:
        """``sessions``: (serial, time) of the TLS sessions that did not fail; ``failures``:
        (serial, time, cause) of the failed ones."""
        ok: dict[str, list[datetime]] = {}
        for serial, when in sessions:
            if when is not None:
                ok.setdefault(serial, []).append(when)
        failed: dict[str, list[tuple[datetime, str]]] = {}
        for serial, when, cause in failures:
            if when is not None:
                failed.setdefault(serial, []).append((when, cause))
        criteria = self.criteria
        merged_points = merge(self._expanded(), self.merge_s)
        # A change's "after" ends where the firewall's next change begins: failures that start
        # after a later change are that change's.
        times: dict[str, list[datetime]] = {}
        for point, _ in merged_points:
            times.setdefault(point.firewall, []).append(point.time)
        points = []
        for point, merged in merged_points:
            later = [w for w in times[point.firewall] if w > point.time]
            until = min(later) if later else None
            points.append(self._compare(point, merged, ok, failed, until))
        return {
            "before_s": criteria.before_s,
            "after_s": criteria.after_s,
            "growth_factor": criteria.factor,
            "min_failures": criteria.min_failures,
            "merge_s": self.merge_s,
            "points": points,
        }

    def _compare(
        self,
        point: ChangePoint,
        merged: int,
        ok: dict[str, list[datetime]],
        failed: dict[str, list[tuple[datetime, str]]],
        until: datetime | None,
    ) -> dict[str, Any]:
        criteria = self.criteria
        t = point.time
        start = t - timedelta(seconds=criteria.before_s)
        end = t + timedelta(seconds=criteria.after_s)
        if until is not None and until < end:
            end = until
        serial = point.firewall
        ok_before = sum(1 for w in ok.get(serial, ()) if start <= w < t)
        ok_after = sum(1 for w in ok.get(serial, ()) if t <= w < end)
        causes_before: Counter[str] = Counter(
            c for w, c in failed.get(serial, ()) if start <= w < t
        )
        causes_after: Counter[str] = Counter(c for w, c in failed.get(serial, ()) if t <= w < end)
        span = self.span.get(serial)
        seen_before = seen_after = 0.0
        if span is not None:
            seen_before = max(0.0, (t - max(start, span[0])).total_seconds())
            seen_after = max(0.0, (min(end, span[1]) - t).total_seconds())
        tls_before = ok_before + causes_before.total()
        tls_after = ok_after + causes_after.total()
        basis = "share" if ok_before and ok_after else "rate"

        def side(failures: int, tls: int, seen_s: float) -> dict[str, Any]:
            return {
                "failures": failures,
                "share": failures / tls if tls else None,
                "per_hour": failures / (seen_s / HOUR_S) if seen_s > 0 else None,
            }

        def metric(values: dict[str, Any]) -> float:
            value = values["share"] if basis == "share" else values["per_hour"]
            return value or 0.0

        causes = []
        for cause in set(causes_before) | set(causes_after):
            before = side(causes_before[cause], tls_before, seen_before)
            after = side(causes_after[cause], tls_after, seen_after)
            flag = None
            if seen_before > 0:  # no logs before the change: nothing to compare with
                flag = verdict(
                    before["failures"], metric(before), after["failures"], metric(after), criteria
                )
            causes.append(
                {
                    "cause": cause,
                    "before": before,
                    "after": after,
                    "flag": flag,
                    "growth": growth(metric(before), metric(after)),
                }
            )
        causes.sort(key=lambda c: (c["flag"] is None, -c["after"]["failures"], c["cause"]))
        return {
            "id": point.id,
            "firewall": point.label,
            "serial": serial,
            "time": t.isoformat(timespec="milliseconds"),
            "kind": point.kind,
            "summary": point.summary,
            "declared": point.declared,
            "from": point.version_from or None,
            "to": point.version_to or None,
            "merged": merged,
            "basis": basis,
            "before": {
                "start": start.isoformat(timespec="milliseconds"),
                "covered_s": seen_before,
                "tls_sessions": tls_before,
                "failures": causes_before.total(),
                "failure_rate": causes_before.total() / tls_before if tls_before else None,
            },
            "after": {
                "end": end.isoformat(timespec="milliseconds"),
                "covered_s": seen_after,
                "tls_sessions": tls_after,
                "failures": causes_after.total(),
                "failure_rate": causes_after.total() / tls_after if tls_after else None,
            },
            "causes": causes,
            "flagged": [c["cause"] for c in causes if c["flag"]],
        }
