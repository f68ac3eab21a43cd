"""Evidence rules compiled from the cause catalogue.

A rule is a list of conditions that must all hold. A condition names a record field and one
test: ``equals``, ``in``, ``prefix``, ``contains`` (case-insensitive string tests), ``regex``
(as written; use ``(?i)`` for case-insensitive), ``exists`` (true/false), ``bits_set`` (every
bit of an integer mask set, for ``flags``), ``before_field`` / ``after_field`` (a time field
compared with another time field, e.g. ``notafter`` before ``time_generated``). ``negate =
true`` inverts the test (an absent field never matches, negated or not, except ``exists``).

A condition looks its field up in the record being classified first, then in the related
records of the same session, restricted to one log type when ``source`` is given. Everything
here is compiled once, when the catalogue is loaded; matching allocates nothing but the result.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

TESTS = (
    "equals",
    "in",
    "prefix",
    "contains",
    "regex",
    "exists",
    "bits_set",
    "before_field",
    "after_field",
)
CONDITION_KEYS = frozenset((*TESTS, "field", "source", "negate"))

Found = tuple[Any, str]  # (value, log type of the record it came from)
_NO_RECORD: Mapping[str, Any] = {"type": None}


def is_empty(value: Any) -> bool:
    return value is None or value == ""


def lookup(
    field: str, source: str | None, record: Mapping[str, Any], related: Sequence[Mapping[str, Any]]
) -> Found | None:
    """First non-empty value of ``field`` in the record, then in the related records."""
    if source is None or record.get("type") == source:
        value = record.get(field)
        if not is_empty(value):
            return value, record.get("type") or "unknown"
    for other in related:
        if source is not None and other.get("type") != source:
            continue
        value = other.get(field)
        if not is_empty(value):
            return value, other.get("type") or "unknown"
    return None


def epoch(value: Any) -> float | None:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            return None  # naive times cannot be compared safely with aware ones
        return value.timestamp()
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    return None


def _text(value: Any) -> str:
    return value if isinstance(value, str) else str(value)


def _string_test(kind: str, arg: Any) -> Callable[[Any], bool]:
    if kind == "equals":
        want = str(arg).casefold()
        return lambda v: _text(v).casefold() == want
    if kind == "in":
        wanted = frozenset(str(a).casefold() for a in arg)
        return lambda v: _text(v).casefold() in wanted
    if kind == "prefix":
        pre = str(arg).casefold()
        return lambda v: _text(v).casefold().startswith(pre)
    if kind == "contains":
        part = str(arg).casefold()
        return lambda v: part in _text(v).casefold()
    if kind == "regex":
        search = re.compile(arg).search
        return lambda v: search(_text(v)) is not None
    if kind == "bits_set":
        mask = int(arg)
        return lambda v: isinstance(v, int) and not isinstance(v, bool) and v & mask == mask
    raise ValueError(f"unknown test {kind!r}")


@dataclass(frozen=True, slots=True)
class Condition:
    field: str
    source: str | None
    kind: str
    arg: Any
    negate: bool
    test: Callable[[Any], bool] | None  # None for exists / time comparisons

    def holds(
        self, record: Mapping[str, Any], related: Sequence[Mapping[str, Any]]
    ) -> Found | None:
        """The evidence (value, log type) when the condition holds, else None.

        For ``exists = false`` the value is None (the absence is the evidence)."""
        source = self.source
        found: Found | None = None
        # The record itself first, inline: this is the per-event hot path.
        if source is None or record.get("type") == source:
            value = record.get(self.field)
            if value is not None and value != "":
                found = (value, record.get("type") or "unknown")
        if found is None and related:
            found = lookup(self.field, source, _NO_RECORD, related)
        kind = self.kind
        if kind == "exists":
            present = found is not None
            if (present == self.arg) != self.negate:
                return found if found is not None else (None, self.source or "any")
            return None
        if found is None:
            return None
        if kind in ("before_field", "after_field"):
            other = lookup(self.arg, self.source, record, related)
            if other is None:
                return None
            left, right = epoch(found[0]), epoch(other[0])
            if left is None or right is None:
                return None
            ok = left < right if kind == "before_field" else left > right
            return found if ok != self.negate else None
        assert self.test is not None
        return found if self.test(found[0]) != self.negate else None


def compile_condition(spec: Mapping[str, Any], default_source: str | None) -> Condition:
    """Build a Condition from its catalogue table; raises ValueError/re.error on bad specs."""
    unknown = set(spec) - CONDITION_KEYS
    if unknown:
        raise ValueError(f"unknown condition key(s) {sorted(unknown)}")
    field = spec.get("field")
    if not isinstance(field, str) or not field:
        raise ValueError("condition without a 'field'")
    kinds = [k for k in TESTS if k in spec]
    if len(kinds) != 1:
        raise ValueError(f"condition on {field!r} needs exactly one test of {list(TESTS)}")
    kind = kinds[0]
    arg = spec[kind]
    source = spec.get("source", default_source)
    if source is not None and not isinstance(source, str):
        raise ValueError(f"condition on {field!r}: 'source' must be a log type string")
    negate = spec.get("negate", False)
    if not isinstance(negate, bool):
        raise ValueError(f"condition on {field!r}: 'negate' must be true or false")
    if kind == "in":
        if not isinstance(arg, list) or not arg:
            raise ValueError(f"condition on {field!r}: 'in' needs a non-empty list")
    elif kind == "exists":
        if not isinstance(arg, bool):
            raise ValueError(f"condition on {field!r}: 'exists' must be true or false")
    elif kind == "bits_set":
        if not isinstance(arg, int) or isinstance(arg, bool) or arg <= 0:
            raise ValueError(f"condition on {field!r}: 'bits_set' needs a positive integer")
    elif not isinstance(arg, str) or not arg:
        raise ValueError(f"condition on {field!r}: {kind!r} needs a non-empty string")
    test = None if kind in ("exists", "before_field", "after_field") else _string_test(kind, arg)
    return Condition(field, source, kind, arg, negate, test)


@dataclass(frozen=True, slots=True)
class Rule:
    """One way of recognising a cause (or a mode): all conditions must hold."""

    target: str  # cause id or mode name
    level: str
    rank: int
    confidence: float
    conditions: tuple[Condition, ...]
    line: int
    # Index into Catalogue.gates of a (field, source) that must be present for the rule to
    # hold, so most rules are skipped with one list lookup; -1 when there is none.
    gate: int = -1

    def match(
        self, record: Mapping[str, Any], related: Sequence[Mapping[str, Any]]
    ) -> list[tuple[Condition, Found]] | None:
        conditions = self.conditions
        first = conditions[0].holds(record, related)
        if first is None:  # the usual case: no allocation
            return None
        hits: list[tuple[Condition, Found]] = [(conditions[0], first)]
        for cond in conditions[1:]:
            found = cond.holds(record, related)
            if found is None:
                return None
            hits.append((cond, found))
        return hits


def gate_of(rule: Rule) -> tuple[str, str | None] | None:
    """A (field, source) the rule cannot hold without: the first positive test's field."""
    for cond in rule.conditions:
        if cond.negate or (cond.kind == "exists" and not cond.arg):
            continue
        return cond.field, cond.source
    return None
