"""Certificates that will break decryption: when they expire and who depends on them (pure).

Three sources:

* server certificates in DECRYPTION logs (Not After, with the days left relative to the log's
  own time); for inbound inspection that is the certificate the firewall itself presents, so
  its expiry breaks every session to that server;
* the firewall's own certificates, which the logs name only once expired (SYSTEM
  ``cert-expiry``, a change point of kind ``certificate-expired``);
* the Forward Trust / Forward Untrust CA an operator declares (settings), which no log shows.

``sighting(record, mode)`` reads one DECRYPTION record; ``Registry`` keeps the latest sighting
of each certificate (bounded) and counts certificates per role and days-left bucket, never a
label per certificate. Days left are those at the log's time, less the wall time since the log
was read, so a replayed or delayed log counts as it stood when it was written.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

DAY_S = 86400.0
# Days-left buckets: (label, upper bound in days, exclusive); the last one has no bound.
BUCKETS: tuple[tuple[str, float], ...] = (
    ("expired", 0.0),
    ("0-7", 7.0),
    ("7-30", 30.0),
    ("30-90", 90.0),
    ("90+", float("inf")),
)
BUCKET_LABELS = tuple(label for label, _ in BUCKETS)
# Roles of a certificate: the decryption mode of the logs that showed it, or what it is to the
# firewall (declared CAs, the firewall's own certificates).
DECLARED_ROLES = ("forward-trust", "forward-untrust")
ROLES = (
    "inbound-inspection",
    "forward-proxy",
    "globalprotect",
    "no-decrypt",
    "unknown",
    *DECLARED_ROLES,
    "firewall",
)
MAX_CERTIFICATES = 20000


def bucket(days_left: float) -> str:
    """The days-left bucket of a certificate."""
    for label, bound in BUCKETS:
        if days_left < bound:
            return label
    return BUCKETS[-1][0]


def cert_key(record: Mapping[str, Any]) -> str | None:
    """A certificate's identity in DECRYPTION records: its fingerprint, else issuer and
    serial number; None when the record shows no certificate."""
    fingerprint = record.get("fingerprint")
    if fingerprint:
        return fingerprint.lower()
    serial = record.get("cert_serial")
    if serial:
        return f"{record.get('issuer_cn') or ''}|{serial}".lower()
    return None


@dataclass(frozen=True, slots=True)
class Sighting:
    """A certificate as one log showed it."""

    key: str
    role: str
    subject: str
    issuer: str
    serial: str
    not_after: datetime
    seen: datetime  # the log's own time
    days_left: float  # at the log's time
    server: str  # the SNI, else the destination address
    firewall: str  # serial
    firewall_name: str


def sighting(record: Mapping[str, Any], mode: str | None) -> Sighting | None:
    """The certificate of a DECRYPTION record with a Not After date (None otherwise)."""
    not_after = record.get("notafter")
    if not isinstance(not_after, datetime):
        return None
    key = cert_key(record)
    if key is None:
        return None
    seen = None
    for name in ("high_res_timestamp", "time_generated", "receive_time"):
        value = record.get(name)
        if isinstance(value, datetime):
            seen = value
            break
    if seen is None:
        return None
    return Sighting(
        key=key,
        role=mode if mode in ROLES else "unknown",
        subject=str(record.get("cn") or ""),
        issuer=str(record.get("issuer_cn") or ""),
        serial=str(record.get("cert_serial") or ""),
        not_after=not_after,
        seen=seen,
        days_left=(not_after - seen).total_seconds() / DAY_S,
        server=str(record.get("sni") or record.get("dst") or ""),
        firewall=str(record.get("serial") or ""),
        firewall_name=str(record.get("device_name") or ""),
    )


@dataclass(frozen=True)
class Declared:
    """A certificate of the firewall that an operator declares: role, name, Not After."""

    role: str
    name: str
    not_after: datetime


class Registry:
    """The latest sighting of each certificate (at most ``max_entries``, the longest unseen
    dropped first), counted per (role, days-left bucket)."""

    def __init__(self, max_entries: int = MAX_CERTIFICATES) -> None:
        self.max_entries = max_entries
        # key -> (role, seconds left at the log's time, wall time it was read)
        self._entries: dict[str, tuple[str, float, float]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def add(self, seen: Sighting, wall: float) -> None:
        entries = self._entries
        entries.pop(seen.key, None)  # keep the dict in order of last sighting
        entries[seen.key] = (seen.role, seen.days_left * DAY_S, wall)
        while len(entries) > self.max_entries:
            del entries[next(iter(entries))]

    def add_expired(self, key: str, wall: float) -> None:
        """A certificate of the firewall that a log says has expired."""
        entries = self._entries
        entries.pop(key, None)
        entries[key] = ("firewall", 0.0, wall)
        while len(entries) > self.max_entries:
            del entries[next(iter(entries))]

    def counts(self, wall: float, declared: tuple[Declared, ...] = ()) -> Counter[tuple[str, str]]:
        """Certificates per (role, bucket) at wall time ``wall`` (epoch seconds)."""
        out: Counter[tuple[str, str]] = Counter()
        for role, left_s, read_at in self._entries.values():
            out[(role, bucket((left_s - (wall - read_at)) / DAY_S))] += 1
        for cert in declared:
            out[(cert.role, bucket((cert.not_after.timestamp() - wall) / DAY_S))] += 1
        return out


def _date(text: str) -> datetime:
    when = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def declared(settings: Any) -> tuple[Declared, ...]:
    """The Forward Trust / Forward Untrust CAs of the settings that have a Not After date."""
    out = []
    for role, name, not_after in (
        ("forward-trust", settings.forward_trust_ca, settings.forward_trust_ca_not_after),
        ("forward-untrust", settings.forward_untrust_ca, settings.forward_untrust_ca_not_after),
    ):
        if not_after:
            out.append(Declared(role, name or role, _date(not_after)))
    return tuple(out)
