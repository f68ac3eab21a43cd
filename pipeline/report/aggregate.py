"""The ``analyze`` report: failures by cause and mode, top servers, rules and sources per
cause, the time span, a timeline and the recommendations (``pipeline.recommend``, the same
code path as ``decryptscope recommend``); change points with failures before and after them,
decryption coverage and expiring certificates (``before_after``, ``coverage``,
``certificates`` beside this module). Pure aggregation: the chain's batch results in
(``pipeline.chain``), a plain dict out (renderers beside this module).

A failure is counted once per session: the TRAFFIC, DECRYPTION and SESSION records of one
session (joined by the chain) are one failure with the best diagnosis among them.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from pipeline.certificates import Declared
from pipeline.chain import BatchResult, Document
from pipeline.changes import ChangePoint
from pipeline.correlate import Sessions
from pipeline.diagnosis import Catalogue, Diagnosis
from pipeline.panos.values import record_time
from pipeline.recommend import Evidence, Gates
from pipeline.regression import Criteria
from pipeline.report.before_after import BeforeAfter
from pipeline.report.certificates import Certificates
from pipeline.report.coverage import Coverage

TOP_N = 5
# Timeline bucket sizes, seconds; the smallest giving at most MAX_BUCKETS buckets is used.
BUCKETS_S = (60, 300, 900, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600, 86400, 7 * 86400)
MAX_BUCKETS = 72
SUMMARY_FIELDS = ("sni", "cn", "dst", "rule", "policy_name", "src", "serial", "device_name")


@dataclass(slots=True)
class _Failure:
    diagnosis: Diagnosis
    time: datetime | None
    fields: dict[str, Any] = field(default_factory=dict)


class Analyzer:
    """Feed the chain's batch results (``add``); ``report()`` summarises."""

    def __init__(
        self,
        catalogue: Catalogue,
        sessions: Sessions,
        gates: Gates | None = None,
        *,
        criteria: Criteria | None = None,
        merge_s: float = 300.0,
        declared_changes: tuple[ChangePoint, ...] = (),
        warn_days: int = 30,
        declared_certificates: tuple[Declared, ...] = (),
    ) -> None:
        self.catalogue = catalogue
        self.sessions = sessions
        self.gates = gates or Gates()
        self.evidence = Evidence()
        self.coverage = Coverage()
        self.before_after = BeforeAfter(criteria or Criteria(), merge_s, declared_changes)
        self.certificates = Certificates(warn_days, declared_certificates)
        self.records = 0
        self.by_type: Counter[str] = Counter()
        self.parse_errors: Counter[str] = Counter()
        self.first: datetime | None = None
        self.last: datetime | None = None
        self.failures: dict[str, _Failure] = {}
        self.failure_events: set[tuple[Any, ...]] = set()

    def add(self, result: BatchResult) -> None:
        counts = result.counts
        self.records += counts.records.total()
        self.by_type.update(counts.records)
        for (_stage, error_type), n in counts.dead_letters.items():
            self.parse_errors[error_type] += n
        for doc in result.documents:
            when = record_time(doc.record)
            if when is not None:
                if self.first is None or when < self.first:
                    self.first = when
                if self.last is None or when > self.last:
                    self.last = when
            if doc.diagnosis is not None:
                self._count(doc, doc.diagnosis, when)
            # What recommendations read: failures and DECRYPTION records (decrypted sessions),
            # and a later version of a document they already hold.
            if (
                doc.diagnosis is not None
                or doc.record.get("type") == "DECRYPTION"
                or doc.doc_id in self.evidence.facts
            ):
                self.evidence.add(doc.doc_id, orjson.loads(doc.source))
            self.coverage.add(doc)
            self.before_after.add(doc)
            self.certificates.add(doc)

    def _count(self, doc: Document, diagnosis: Diagnosis, when: datetime | None) -> None:
        record = doc.record
        seqno = record.get("seqno")
        event = seqno if seqno is not None else doc.doc_id
        self.failure_events.add((record.get("serial"), record.get("type"), event))
        group = doc.session or f"document:{doc.doc_id}"
        failure = self.failures.get(group)
        if failure is None:
            failure = self.failures[group] = _Failure(diagnosis, when)
        elif diagnosis.confidence >= failure.diagnosis.confidence:
            failure.diagnosis = diagnosis
        if when is not None and (failure.time is None or when < failure.time):
            failure.time = when
        prefer = record.get("type") == "DECRYPTION"
        for name in SUMMARY_FIELDS:
            value = record.get(name)
            if value in (None, ""):
                continue
            if prefer or name not in failure.fields:
                failure.fields[name] = value

    def report(self) -> dict[str, Any]:
        report = build_report(self)
        sessions = self.coverage.counted()
        report["changes"] = self.before_after.report(
            ((s.firewall, s.time) for s in sessions),
            (
                (str(f.fields.get("serial") or ""), f.time, f.diagnosis.cause)
                for f in self.failures.values()
            ),
        )
        report["coverage"] = self.coverage.report()
        report["certificates"] = self.certificates.report(self.last)
        return report


def _top(counter: Counter[str]) -> list[dict[str, Any]]:
    return [{"value": k, "count": n} for k, n in counter.most_common(TOP_N)]


def _bucket_size(first: datetime | None, last: datetime | None) -> int:
    if first is None or last is None:
        return BUCKETS_S[0]
    span = max((last - first).total_seconds(), 1.0)
    for size in BUCKETS_S:
        if span / size <= MAX_BUCKETS:
            return size
    days = -(-span // (MAX_BUCKETS * 86400))  # whole days, rounded up
    return int(days) * 86400


def build_report(analyzer: Analyzer) -> dict[str, Any]:
    catalogue = analyzer.catalogue
    failures = list(analyzer.failures.values())
    total = len(failures)
    per_cause: dict[str, dict[str, Any]] = {}
    modes: Counter[str] = Counter()
    for failure in failures:
        diag = failure.diagnosis
        modes[diag.mode] += 1
        slot = per_cause.get(diag.cause)
        if slot is None:
            slot = per_cause[diag.cause] = {
                "count": 0,
                "modes": Counter(),
                "servers": Counter(),
                "rules": Counter(),
                "decryption_rules": Counter(),
                "sources": Counter(),
                "firewalls": Counter(),
            }
        slot["count"] += 1
        slot["modes"][diag.mode] += 1
        f = failure.fields
        server = f.get("sni") or f.get("cn") or f.get("dst")
        if server:
            slot["servers"][str(server)] += 1
        if f.get("rule"):
            slot["rules"][str(f["rule"])] += 1
        if f.get("policy_name"):
            slot["decryption_rules"][str(f["policy_name"])] += 1
        if f.get("src"):
            slot["sources"][str(f["src"])] += 1
        firewall = f.get("device_name") or f.get("serial")
        if firewall:
            slot["firewalls"][str(firewall)] += 1

    causes = []
    for cause_id, slot in sorted(per_cause.items(), key=lambda kv: (-kv[1]["count"], kv[0])):
        cause = catalogue.causes[cause_id]
        causes.append(
            {
                "cause": cause_id,
                "category": cause.category,
                "title": cause.title,
                "count": slot["count"],
                "share": slot["count"] / total if total else 0.0,
                "modes": dict(slot["modes"].most_common()),
                "top_servers": _top(slot["servers"]),
                "top_rules": _top(slot["rules"]),
                "top_decryption_rules": _top(slot["decryption_rules"]),
                "top_sources": _top(slot["sources"]),
                "top_firewalls": _top(slot["firewalls"]),
                "remediation": cause.remediation,
                "references": list(cause.references),
            }
        )

    first, last = analyzer.first, analyzer.last
    size = _bucket_size(first, last)
    timeline: dict[str, Any] = {"bucket_s": size, "buckets": [], "series": {}}
    timed = [f for f in failures if f.time is not None]
    if timed:
        start = min(f.time.timestamp() for f in timed)  # type: ignore[union-attr]
        start -= start % size
        end = max(f.time.timestamp() for f in timed)  # type: ignore[union-attr]
        count = int((end - start) // size) + 1
        timeline["buckets"] = [
            datetime.fromtimestamp(start + i * size, UTC).isoformat() for i in range(count)
        ]
        series: dict[str, list[int]] = {c["cause"]: [0] * count for c in causes}
        for f in timed:
            index = int((f.time.timestamp() - start) // size)  # type: ignore[union-attr]
            series[f.diagnosis.cause][index] += 1
        timeline["series"] = series

    corr = analyzer.sessions
    return {
        "records": analyzer.records,
        "records_by_type": dict(analyzer.by_type.most_common()),
        "parse_errors": dict(analyzer.parse_errors.most_common()),
        "span": {
            "start": first.isoformat() if first else None,
            "end": last.isoformat() if last else None,
        },
        "failures": {"sessions": total, "events": len(analyzer.failure_events)},
        "correlation": {
            "sessions_correlated": corr.correlated,
            "window_s": corr.window_s,
            "evicted": corr.evicted,
        },
        "modes": [
            {"mode": m, "count": n, "share": n / total if total else 0.0}
            for m, n in modes.most_common()
        ],
        "causes": causes,
        "timeline": timeline,
        "recommendations": analyzer.evidence.recommend(analyzer.gates),
    }
