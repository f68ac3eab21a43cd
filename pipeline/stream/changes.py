"""Change points, coverage and certificates in the worker: what each batch's chain result
found, moved out once per batch.

* change points: counted (``decryptscope_change_points_total``), sent as ``ChangeNotice`` to
  every partition of the window-counts topic (each cause's regression detector sits on one of
  them and must know every firewall's changes: a few messages per change, none per event), and
  a change that raises an alert at once (a SYSTEM ``cert-expiry``: the firewall's own
  certificate has expired) goes to the alerts topic and the alerts index;
* TLS sessions decrypted or not: ``decryptscope_tls_sessions_total``;
* certificates: the latest sighting of each (``pipeline.certificates.Registry``), counted per
  role and days-left bucket into ``decryptscope_certificates`` by a timer, with the Forward
  Trust / Untrust CAs of the settings;
* the config version each firewall wrote last, which the chain reads (``versions``).

Firewalls get a label value of their own only when ``metric_firewalls`` names them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from pipeline import certificates, changes, wire
from pipeline.alerting import change_alert
from pipeline.chain import BatchResult
from pipeline.diagnosis import event_mode
from pipeline.metrics import (
    Metrics,
    change_kind_label,
    decrypted_label,
    firewall_label,
    log_type_label,
    mode_label,
    prime_deployment,
)
from pipeline.settings import Settings

Sink = Callable[[list[dict[str, Any]]], Awaitable[Any]]


class ChangeRelay:
    def __init__(self, settings: Settings, metrics: Metrics) -> None:
        self.metrics = metrics
        self.partitions = settings.topic_partitions
        self.firewalls = frozenset(settings.metric_firewalls)
        self.kinds = frozenset(changes.kinds())
        self.registry = certificates.Registry()
        self.declared_certificates = certificates.declared(settings)
        self.declared = changes.declared(settings.declared_changes)
        self.versions: dict[str, tuple[str, str | None]] = {}
        self.names: dict[str, str] = {}  # serial -> device name, for labels by name
        prime_deployment(metrics, self.kinds, self.firewalls)

    def firewall(self, serial: str, name: str = "") -> str:
        return firewall_label(serial, name or self.names.get(serial, ""), self.firewalls)

    def observe(self, result: BatchResult, now: float) -> list[dict[str, Any]]:
        """Take one batch's result (after the chain ran at ``now``); returns the alerts to raise
        at once."""
        metrics = self.metrics
        self.versions.update(result.versions)
        counts = result.counts
        for (log_type, mode, decrypted, serial), n in counts.tls_sessions.items():
            metrics.tls_sessions.labels(
                log_type_label(log_type),
                mode_label(mode),
                decrypted_label(decrypted),
                self.firewall(serial),
            ).inc(n)
        registry = self.registry
        for record in counts.certificates.values():
            seen = certificates.sighting(record, event_mode(record))
            if seen is not None:
                registry.add(seen, now)
                if seen.firewall_name:
                    self.names.setdefault(seen.firewall, seen.firewall_name)
        alerts = []
        for change in result.changes:
            if change.name:
                self.names.setdefault(change.firewall, change.name)
            metrics.change_points.labels(
                change_kind_label(change.kind, self.kinds), self.firewall(change.firewall)
            ).inc()
            if change.kind == "certificate-expired":
                registry.add_expired(f"{change.firewall}:{change.object}", now)
            if change.alert:
                alerts.append(change_alert(change))
        return alerts

    def notices(self, result: BatchResult, now: float) -> list[bytes]:
        """The change notices of a batch, encoded (each goes to every partition)."""
        return [
            wire.encode_change_notice(wire.change_notice(change, now)) for change in result.changes
        ]

    def send(self, topic: Any, result: BatchResult, now: float) -> None:
        """Every change notice of the batch to every partition of the window-counts topic."""
        for value in self.notices(result, now):
            for partition in range(self.partitions):
                topic.send_soon(key=b"change", value=value, partition=partition)

    def refresh_certificates(self, now: float) -> None:
        """Set ``decryptscope_certificates`` for every role and bucket (zero included)."""
        counts = self.registry.counts(now, self.declared_certificates)
        gauge = self.metrics.certificates
        for role in certificates.ROLES:
            for label in certificates.BUCKET_LABELS:
                gauge.labels(role, label).set(counts.get((role, label), 0))
