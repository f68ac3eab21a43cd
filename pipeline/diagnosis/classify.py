"""Record (+ the other records of its session) -> Diagnosis, or None when it is not a
decryption failure. Pure; the catalogue is compiled once and rules are tried best first, so
the first rule whose conditions all hold decides the cause. A decryption event that is not a
failure still has a mode (``event_mode``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from pipeline.diagnosis.catalogue import Catalogue, load_catalogue
from pipeline.diagnosis.model import Diagnosis
from pipeline.diagnosis.rules import Condition, Found, Rule, lookup


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


def _key_plan(catalogue: Catalogue) -> tuple[tuple[str, ...], tuple[Condition, ...]]:
    """What a record's verdict depends on: the values of the fields several conditions read
    (error texts, statuses, proxy types, end reasons: a few distinct values each), and the
    outcome of each condition that alone reads its fields (the SNI against the pinned
    domains, Not After against the log's time: values that change with every server or
    second, but whose test has two outcomes)."""
    reads: dict[str, list[int]] = {"type": []}  # field -> the conditions (by id) reading it
    conditions: dict[int, Condition] = {}
    for rule in (*catalogue.rules, *catalogue.mode_rules, *catalogue.mode_events):
        for cond in rule.conditions:
            conditions[id(cond)] = cond
            for name in _fields_of(cond):
                reads.setdefault(name, []).append(id(cond))
    # `type` also says whether a condition's source is the record itself: always a value.
    alone = {
        ident
        for ident, cond in conditions.items()
        if all(name != "type" and len(set(reads[name])) == 1 for name in _fields_of(cond))
    }
    values = tuple(name for name, idents in reads.items() if not set(idents) <= alone)
    return values, tuple(cond for ident, cond in conditions.items() if ident in alone)


def _fields_of(cond: Condition) -> tuple[str, ...]:
    if cond.kind in ("before_field", "after_field"):
        return cond.field, cond.arg
    return (cond.field,)


class Classifier:
    """Classifies records against one compiled catalogue.

    A record classified alone (no related records) has a verdict that depends only on what
    the rules read (``_key_plan``): logs repeat the same error texts, statuses and proxy types,
    so verdicts are remembered by those values and outcomes (bounded). Diagnosis is immutable:
    one object serves every record whose evidence it shows exactly; where the evidence holds a
    value the memory keys only by outcome (an SNI, a Not After), the remembered rule is applied
    to the record again for its own evidence."""

    __slots__ = ("_alone", "_events", "_outcomes", "_per_record", "catalogue", "fields")

    def __init__(self, catalogue: Catalogue) -> None:
        self.catalogue = catalogue
        self.fields, self._outcomes = _key_plan(catalogue)
        self._per_record = frozenset(cond.field for cond in self._outcomes)
        self._alone: dict[tuple[Any, ...], Diagnosis | Rule | None] = {}
        self._events: dict[tuple[Any, ...], str | None] = {}

    def _key(self, record: Mapping[str, Any]) -> tuple[Any, ...]:
        get = record.get
        key = [get(name) for name in self.fields]
        key.extend([cond.holds(record, ()) is not None for cond in self._outcomes])
        return tuple(key)

    @staticmethod
    def _remember(memory: dict[tuple[Any, ...], Any], key: tuple[Any, ...], value: Any) -> None:
        if len(memory) >= CACHE_SIZE:
            memory.clear()
        memory[key] = value

    def classify(
        self, record: Mapping[str, Any], related: Sequence[Mapping[str, Any]] = ()
    ) -> Diagnosis | None:
        if related:
            return self._classify(record, related)
        key = self._key(record)
        try:
            found = self._alone.get(key, _MISS)
        except TypeError:  # a value that cannot be a key: no memory for this record
            return self._classify(record, ())
        if found is _MISS:
            first = self._first(record, ())
            if first is None:
                self._remember(self._alone, key, None)
                return None
            rule, hits = first
            diagnosis = self._diagnosis(rule, hits, record, ())
            own = any(item["field"] in self._per_record for item in diagnosis.evidence)
            self._remember(self._alone, key, rule if own else diagnosis)
            return diagnosis
        if isinstance(found, Rule):
            hits = found.match(record, ())
            if hits is None:  # cannot happen while the key holds what the rules read
                return self._classify(record, ())
            return self._diagnosis(found, hits, record, ())
        return found

    def _classify(
        self, record: Mapping[str, Any], related: Sequence[Mapping[str, Any]]
    ) -> Diagnosis | None:
        first = self._first(record, related)
        return None if first is None else self._diagnosis(*first, record, related)

    def _first(
        self, record: Mapping[str, Any], related: Sequence[Mapping[str, Any]]
    ) -> tuple[Rule, list[tuple[Condition, Found]]] | None:
        """The first cause rule that holds, with its hits."""
        # Which gate fields the session has at all; rules whose gate is absent are skipped.
        present = [lookup(f, s, record, related) is not None for f, s in self.catalogue.gates]
        for rule in self.catalogue.rules:
            if rule.gate >= 0 and not present[rule.gate]:
                continue
            hits = rule.match(record, related)
            if hits is not None:
                return rule, hits
        return None

    def _diagnosis(
        self,
        rule: Rule,
        hits: list[tuple[Condition, Found]],
        record: Mapping[str, Any],
        related: Sequence[Mapping[str, Any]],
    ) -> Diagnosis:
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
        key = self._key(record)
        try:
            found = self._events.get(key, _MISS)
        except TypeError:
            return self._event_mode(record, ())
        if found is _MISS:
            found = self._event_mode(record, ())
            self._remember(self._events, key, found)
        return found

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
