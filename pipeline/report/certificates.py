"""The ``analyze`` report's certificates that will break decryption: those that expire within
``warn_days`` (or have expired), with the servers and sessions that depend on them (pure).

* server certificates of the DECRYPTION logs, with the days left at the time of the last log
  that showed them; for inbound inspection the firewall presents that certificate itself, so
  those come first;
* the firewall's own certificates that a SYSTEM ``cert-expiry`` event says have expired;
* the Forward Trust / Forward Untrust CA declared in the settings, with the days left at the
  end of the logs, on which every forward proxy session depends.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pipeline.certificates import DAY_S, Declared, bucket, sighting
from pipeline.chain import Document
from pipeline.diagnosis import event_mode

TOP_N = 5


@dataclass(slots=True)
class _Cert:
    subject: str
    issuer: str
    serial: str
    not_after: datetime
    last_seen: datetime
    days_left: float
    roles: Counter[str] = field(default_factory=Counter)
    servers: Counter[str] = field(default_factory=Counter)
    firewalls: Counter[str] = field(default_factory=Counter)
    sessions: set[tuple[str, Any]] = field(default_factory=set)


class Certificates:
    """Collects the certificates the documents show (``add``)."""

    def __init__(self, warn_days: int, declared: tuple[Declared, ...] = ()) -> None:
        self.warn_days = warn_days
        self.declared = declared
        self.certs: dict[str, _Cert] = {}
        self.expired: dict[tuple[str, str], dict[str, Any]] = {}
        self.forward: Counter[str] = Counter()  # servers of forward proxy sessions
        self.forward_sessions: set[tuple[str, Any]] = set()
        self.latest: datetime | None = None

    def add(self, doc: Document) -> None:
        change = doc.change
        if change is not None:
            if change.kind == "certificate-expired":
                self.expired[(change.firewall, change.object)] = {
                    "subject": change.object or change.summary,
                    "role": "firewall",
                    "firewall": change.label,
                    "not_after": change.time.isoformat(),
                    "days_left": 0.0,
                    "source": change.summary,
                }
            return
        record = doc.record
        if record.get("type") != "DECRYPTION":
            return
        mode = event_mode(record)
        seen = sighting(record, mode)
        session = (record.get("serial") or "", record.get("sessionid"))
        if mode == "forward-proxy" and doc.diagnosis is None:
            self.forward_sessions.add(session)
            server = record.get("sni") or record.get("dst")
            if server:
                self.forward[str(server)] += 1
        if seen is None:
            return
        if self.latest is None or seen.seen > self.latest:
            self.latest = seen.seen
        cert = self.certs.get(seen.key)
        if cert is None:
            cert = self.certs[seen.key] = _Cert(
                seen.subject, seen.issuer, seen.serial, seen.not_after, seen.seen, seen.days_left
            )
        elif seen.seen >= cert.last_seen:
            cert.last_seen, cert.days_left = seen.seen, seen.days_left
        cert.roles[seen.role] += 1
        if seen.server:
            cert.servers[seen.server] += 1
        label = seen.firewall_name or seen.firewall
        if label:
            cert.firewalls[label] += 1
        cert.sessions.add(session)

    def report(self, end: datetime | None = None) -> dict[str, Any]:
        """``end``: the time the declared certificates' days left count from (the end of the
        logs; the last certificate sighting when None)."""
        warn = self.warn_days
        rows: list[dict[str, Any]] = []
        for cert in self.certs.values():
            if cert.days_left > warn:
                continue
            role = cert.roles.most_common(1)[0][0]
            rows.append(
                {
                    "subject": cert.subject,
                    "issuer": cert.issuer,
                    "serial": cert.serial,
                    "role": role,
                    "not_after": cert.not_after.isoformat(),
                    "days_left": round(cert.days_left, 1),
                    "bucket": bucket(cert.days_left),
                    "last_seen": cert.last_seen.isoformat(),
                    "sessions": len(cert.sessions),
                    "servers": [
                        {"value": s, "count": n} for s, n in cert.servers.most_common(TOP_N)
                    ],
                    "firewalls": [
                        {"value": f, "count": n} for f, n in cert.firewalls.most_common(TOP_N)
                    ],
                }
            )
        rows.extend(self.expired.values())
        if self.declared:
            last = end or self.latest
            at = last.timestamp() if last is not None else None
            for cert in self.declared:
                left = (cert.not_after.timestamp() - at) / DAY_S if at is not None else None
                if left is not None and left > warn:
                    continue
                rows.append(
                    {
                        "subject": cert.name,
                        "role": cert.role,
                        "not_after": cert.not_after.isoformat(),
                        "days_left": round(left, 1) if left is not None else None,
                        "bucket": bucket(left) if left is not None else None,
                        "declared": True,
                        "sessions": len(self.forward_sessions),
                        "servers": [
                            {"value": s, "count": n} for s, n in self.forward.most_common(TOP_N)
                        ],
                    }
                )
        rows.sort(
            key=lambda r: (
                r["role"] not in ("inbound-inspection", "forward-trust"),
                r["days_left"] if r.get("days_left") is not None else float("inf"),
                r["subject"],
            )
        )
        return {"warn_days": warn, "seen": len(self.certs), "expiring": rows}
