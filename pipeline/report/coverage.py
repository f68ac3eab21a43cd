"""The ``analyze`` report's coverage: TLS sessions decrypted and not decrypted, per firewall,
security rule, zone pair and application, and the undecrypted destinations that carry the most
sessions and bytes (pure; the chain's documents in, a plain dict out).

A session is counted once: its TRAFFIC end and its DECRYPTION log (joined by serial and
session id) are one session; the TRAFFIC end says whether it was decrypted and how many bytes
it carried, the DECRYPTION log its mode and server name. Failed handshakes are not counted
here (the failures are).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pipeline import coverage
from pipeline.chain import Document
from pipeline.diagnosis import event_mode
from pipeline.panos.values import record_time

TOP_N = 10


@dataclass(slots=True)
class Session:
    firewall: str  # serial
    name: str  # device name
    time: datetime | None
    decrypted: bool
    decided_by: str  # the log type that said so last: TRAFFIC wins over DECRYPTION
    mode: str
    rule: str
    zones: str
    app: str
    destination: str
    server: str  # SNI
    bytes: int


def _zones(record: Any) -> str:
    src, dst = record.get("from"), record.get("to")
    return f"{src or '?'} -> {dst or '?'}" if src or dst else ""


class Coverage:
    """Collects the TLS sessions of the documents it is given (``add``)."""

    def __init__(self) -> None:
        self.sessions: dict[tuple[str, Any], Session] = {}
        self.failed: set[tuple[str, Any]] = set()

    def add(self, doc: Document) -> None:
        record = doc.record
        log_type = record.get("type")
        if log_type not in coverage.COVERAGE_TYPES or doc.change is not None:
            return
        key = (record.get("serial") or "", record.get("sessionid"))
        if doc.diagnosis is not None:
            self.failed.add(key)
            return
        decrypted = coverage.decrypted(record)
        if decrypted is None:
            return
        mode = (event_mode(record) or "unknown") if log_type == "DECRYPTION" else "unknown"
        session = self.sessions.get(key)
        if session is None:
            session = self.sessions[key] = Session(
                firewall=key[0],
                name=str(record.get("device_name") or ""),
                time=record_time(record),
                decrypted=decrypted,
                decided_by=log_type,
                mode=mode,
                rule="",
                zones="",
                app="",
                destination="",
                server="",
                bytes=0,
            )
        if log_type == "TRAFFIC" or session.decided_by != "TRAFFIC":
            session.decrypted = decrypted
            session.decided_by = log_type
        if mode != "unknown":
            session.mode = mode
        when = record_time(record)
        if when is not None and (session.time is None or when < session.time):
            session.time = when
        session.name = session.name or str(record.get("device_name") or "")
        session.rule = session.rule or str(record.get("rule") or "")
        session.zones = session.zones or _zones(record)
        session.app = session.app or str(record.get("app") or "")
        session.destination = session.destination or str(record.get("dst") or "")
        session.server = session.server or str(record.get("sni") or "")
        if log_type == "TRAFFIC" and isinstance(record.get("bytes"), int):
            session.bytes = record["bytes"]

    def counted(self) -> list[Session]:
        """The sessions counted: every one seen, less those that failed."""
        return [s for k, s in self.sessions.items() if k not in self.failed]

    def report(self) -> dict[str, Any]:
        sessions = self.counted()
        total = len(sessions)
        done = sum(1 for s in sessions if s.decrypted)

        def split(name: str) -> list[dict[str, Any]]:
            yes: Counter[str] = Counter()
            no: Counter[str] = Counter()
            for s in sessions:
                value = getattr(s, name) if name != "firewall" else _firewall(s)
                (yes if s.decrypted else no)[value or "-"] += 1
            rows = []
            for value in sorted(set(yes) | set(no), key=lambda v: (-(yes[v] + no[v]), v)):
                n = yes[value] + no[value]
                rows.append(
                    {
                        "value": value,
                        "sessions": n,
                        "decrypted": yes[value],
                        "not_decrypted": no[value],
                        "share_decrypted": yes[value] / n,
                    }
                )
            return rows[:TOP_N]

        by_sessions: Counter[str] = Counter()
        by_bytes: Counter[str] = Counter()
        for s in sessions:
            if not s.decrypted:
                where = s.server or s.destination or "-"
                by_sessions[where] += 1
                by_bytes[where] += s.bytes
        return {
            "tls_sessions": total,
            "decrypted": done,
            "not_decrypted": total - done,
            "share_decrypted": done / total if total else None,
            "modes": dict(Counter(s.mode for s in sessions if s.decrypted).most_common()),
            "by_firewall": split("firewall"),
            "by_rule": split("rule"),
            "by_zones": split("zones"),
            "by_application": split("app"),
            "undecrypted_by_sessions": [
                {"destination": d, "sessions": n, "bytes": by_bytes[d]}
                for d, n in sorted(by_sessions.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP_N]
            ],
            "undecrypted_by_bytes": [
                {"destination": d, "sessions": by_sessions[d], "bytes": n}
                for d, n in sorted(by_bytes.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP_N]
                if n
            ],
        }


def _firewall(session: Session) -> str:
    if session.name and session.firewall:
        return f"{session.name} ({session.firewall})"
    return session.name or session.firewall
