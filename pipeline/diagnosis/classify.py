"""Record (+ the other records of its session) -> Diagnosis, or None when it is not a
decryption failure. Pure; the catalogue is compiled once and rules are tried best first, so
the first rule whose conditions all hold decides the cause. A decryption event that is not a
failure still has a mode (``event_mode``)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from pipeline.diagnosis.catalogue import Catalogue, load_catalogue
from pipeline.diagnosis.model import Diagnosis
from pipeline.diagnosis.rules import Condition, Found, lookup


def _evidence_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def _evidence(hits: list[tuple[Condition, Found]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for cond, (value, source) in hits:
        out.append({"field": cond.field, "value": _evidence_value(value), "source": source})
    return out


# Distinct verdicts remembered for records classified alone (see Classifier.classify).
CACHE_SIZE = 4096
_MISS = object()


def _read_fields(catalogue: Catalogue) -> tuple[str, ...]:
    """Every field of a record that a rule of ``catalogue`` reads (and its type, which says
    whether a rule's ``source`` is the record itself)."""
    names: dict[str, None] = {"type": None}
    for rule in (*catalogue.rules, *catalogue.mode_rules, *catalogue.mode_events):
        for cond in rule.conditions:
            names[cond.field] = None
            if cond.kind in ("before_field", "after_field"):
                names[cond.arg] = None
    return tuple(names)


class Classifier:
    """Classifies records against one compiled catalogue.

    A record classified alone (no related records) has a verdict that depends only on the
    few fields the rules read (``fields``): logs repeat the same error texts, statuses and
    proxy types, so those verdicts are remembered by those values (bounded; Diagnosis is
    immutable, so one object serves every record with the same values)."""

    __slots__ = ("_alone", "_events", "catalogue", "fields")

    def __init__(self, catalogue: Catalogue) -> None:
        self.catalogue = catalogue
        self.fields = _read_fields(catalogue)
        self._alone: dict[tuple[Any, ...], Diagnosis | None] = {}
        self._events: dict[tuple[Any, ...], str | None] = {}

    def _remembered(
        self,
        memory: dict[tuple[Any, ...], Any],
        work: Callable[[Mapping[str, Any], Sequence[Mapping[str, Any]]], Any],
        record: Mapping[str, Any],
    ) -> Any:
        """``work(record, ())``, remembered in ``memory`` by the values of ``fields``."""
        get = record.get
        key = tuple([get(name) for name in self.fields])
        try:
            found = memory.get(key, _MISS)
        except TypeError:  # a value that cannot be a key: no memory for this record
            return work(record, ())
        if found is _MISS:
            found = work(record, ())
            if len(memory) >= CACHE_SIZE:
                memory.clear()
            memory[key] = found
        return found

    def classify(
        self, record: Mapping[str, Any], related: Sequence[Mapping[str, Any]] = ()
    ) -> Diagnosis | None:
        if related:
            return self._classify(record, related)
        return self._remembered(self._alone, self._classify, record)

    def _classify(
        self, record: Mapping[str, Any], related: Sequence[Mapping[str, Any]]
    ) -> Diagnosis | None:
        # Which gate fields the session has at all; rules whose gate is absent are skipped.
        present = [lookup(f, s, record, related) is not None for f, s in self.catalogue.gates]
        for rule in self.catalogue.rules:
            if rule.gate >= 0 and not present[rule.gate]:
                continue
            hits = rule.match(record, related)
            if hits is None:
                continue
            cause = self.catalogue.causes[rule.target]
            evidence = _evidence(hits)
            mode = self.mode(record, related, cause.mode, evidence)
            return Diagnosis(
                cause=cause.id,
                category=cause.category,
                mode=mode,
                confidence=rule.confidence,
                evidence=tuple(evidence),
                remediation=cause.remediation,
                references=cause.references,
            )
        return None

    def mode(
        self,
        record: Mapping[str, Any],
        related: Sequence[Mapping[str, Any]] = (),
        fallback: str | None = None,
        evidence: list[dict[str, Any]] | None = None,
    ) -> str:
        """The decryption mode: first matching mode rule, else the cause's mode, else default."""
        for rule in self.catalogue.mode_rules:
            hits = rule.match(record, related)
            if hits is None:
                continue
            if evidence is not None:
                for item in _evidence(hits):
                    if item not in evidence:
                        evidence.append(item)
            return rule.target
        return fallback or self.catalogue.default_mode

    def event_mode(
        self, record: Mapping[str, Any], related: Sequence[Mapping[str, Any]] = ()
    ) -> str | None:
        """The mode of a decryption event (a record matching one of the catalogue's
        ``[[mode_events]]``, e.g. a DECRYPTION log or the TRAFFIC end of a decrypted
        session), whether or not it failed; None for any other record."""
        if related:
            return self._event_mode(record, related)
        return self._remembered(self._events, self._event_mode, record)

    def _event_mode(
        self, record: Mapping[str, Any], related: Sequence[Mapping[str, Any]]
    ) -> str | None:
        for rule in self.catalogue.mode_events:
            if rule.match(record, related) is not None:
                return self.mode(record, related)
        return None


@lru_cache(maxsize=4)
def classifier_for(path: str | None = None) -> Classifier:
    """The (cached) classifier of a catalogue file; the built-in one by default."""
    return Classifier(load_catalogue(Path(path) if path else None))


def classify(
    record: Mapping[str, Any], related: Sequence[Mapping[str, Any]] = ()
) -> Diagnosis | None:
    """Diagnose ``record`` with the built-in catalogue; None when it is not a decryption
    failure. ``related``: the other records of the same session (serial + session id)."""
    return classifier_for(None).classify(record, related)


def event_mode(record: Mapping[str, Any], related: Sequence[Mapping[str, Any]] = ()) -> str | None:
    """The decryption mode of ``record`` when it is a decryption event (failed or not), with
    the built-in catalogue; None when it is no decryption event."""
    return classifier_for(None).event_mode(record, related)
