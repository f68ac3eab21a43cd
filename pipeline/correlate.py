"""Join the log lines of one TLS session (pure state machine; the caller owns the state).

PAN-OS writes up to three views of a failing session, in any order: the DECRYPTION log (at
the handshake, with the precise error), the TRAFFIC log (at session end, with only the
highest-priority end reason, e.g. ``decrypt-error`` or even ``policy-deny``) and, when an
operator looks, a ``show session id`` output (SESSION, with the tracker stage). They share the
firewall serial and the session id; joining them lets a generic TRAFFIC end reason take the
specific cause of its DECRYPTION record.

API for a caller that owns the state (``pipeline.chain`` over a Faust table or ``Sessions``)::

    key = correlation_key(record)              # "serial:sessionid", or None (not joinable)
    entry, emits = observe(state.get(key), record, now, window_s)
    if entry is not None:
        state[key] = entry                     # a JSON-serialisable plain dict
    for e in emits:                            # Emit(record, diagnosis, correlation, reemit,
        send(e.record, e.diagnosis, e.correlation)   #      original)
    ...
    if expired(state[key], now, window_s): del state[key]   # periodic clean-up

* ``observe(entry, record, now, window_s, *, classifier=None, reparse=None)`` returns the
  entry to store (None when there is nothing to store) and the events to emit: first the
  record itself with its diagnosis (computed with the session's other records), then every
  earlier record of the session whose diagnosis changed because of the new one
  (``reemit=True``), to be re-sent under its original document id. ``correlation`` is
  ``{"key": "serial:sessionid", "joined": [log types in arrival order], "count": n}`` once
  two or more records are joined, else None.
* State is kept only where a join can still happen: a record opens an entry when it is a
  decryption failure (a DECRYPTION error, a TRAFFIC ``decrypt-*`` end, anything the catalogue
  diagnoses), an allowed session that ended ``policy-deny`` or a ``show session id`` output,
  and joins an entry that is live. A successful
  handshake or an ordinary TRAFFIC end with no live entry of its session stores nothing.
* An entry older than ``window_s`` since its last record is expired: ``observe`` starts a fresh
  one in its place, and ``expired(entry, now, window_s)`` tells the caller when to drop it.
  ``now`` is the caller's clock in epoch seconds (wall time, or event time offline).
* Entries keep, per log type (the newest record of that type), the message as received
  (``_message``) and the cause last emitted. When another line of the session arrives, the
  records of the entry are rebuilt by parsing their messages again (``reparse``, default
  ``pipeline.panos.parse_line``): joins are rare next to writes, so an entry is small and
  cheap to write, and a re-sent document is complete. A record with no message (one built in
  code) keeps a compact copy of the fields the cause catalogue reads instead.
* ``Sessions`` is a bounded in-memory store of entries (least recently written evicted first)
  for offline use, with ``correlated``, ``evicted`` and ``expired`` counters.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pipeline.diagnosis import Classifier, Diagnosis, classifier_for
from pipeline.errors import DecryptscopeError
from pipeline.panos import parse_line
from pipeline.wire import session_key

JOIN_TYPES = frozenset({"TRAFFIC", "DECRYPTION", "SESSION"})
ENTRY_VERSION = 2

# Kept in the compact copy besides every field the catalogue reads: what identifies the
# record (document id, ECS basics) and what reports show.
IDENTITY_FIELDS = (
    "type",
    "subtype",
    "serial",
    "sessionid",
    "seqno",
    "receive_time",
    "time_generated",
    "src",
    "dst",
    "sport",
    "dport",
    "natsrc",
    "natdst",
    "proto",
    "app",
    "rule",
    "policy_name",
    "device_name",
    "vsys",
    "from",
    "to",
    "action",
    "sni",
    "cn",
    "issuer_cn",
    "root_cn",
    "proxy_type",
    "err_index",
    "error",
    "session_end_reason",
    "tracker_stage_firewall",
    "tracker_stage_l7proc",
    "_format",
    "_layout",
    "_host",
    "_syslog_time",
)

Reparse = Callable[[str], Mapping[str, Any]]


@dataclass(frozen=True, slots=True)
class Emit:
    record: Mapping[str, Any]
    diagnosis: Diagnosis | None
    correlation: dict[str, Any] | None
    reemit: bool = False
    original: str | None = None


def correlation_key(record: Mapping[str, Any]) -> str | None:
    """``"serial:sessionid"`` for TRAFFIC, DECRYPTION and SESSION records with a session id."""
    if record.get("type") not in JOIN_TYPES:
        return None
    sessionid = record.get("sessionid")
    if sessionid is None or sessionid == "":
        return None
    return session_key(record.get("serial"), sessionid)


def expired(entry: Mapping[str, Any], now: float, window_s: float) -> bool:
    return now - float(entry["last"]) > window_s


_FIELDS_CACHE: dict[int, tuple[str, ...]] = {}


def _compact_fields(classifier: Classifier) -> tuple[str, ...]:
    cached = _FIELDS_CACHE.get(id(classifier))
    if cached is None:
        names = dict.fromkeys(IDENTITY_FIELDS)
        cat = classifier.catalogue
        for rule in (*cat.rules, *cat.mode_rules):
            for cond in rule.conditions:
                names[cond.field] = None
                if cond.kind in ("before_field", "after_field"):
                    names[cond.arg] = None
        cached = tuple(names)
        _FIELDS_CACHE[id(classifier)] = cached
    return cached


def _compact(record: Mapping[str, Any], fields: tuple[str, ...]) -> dict[str, Any]:
    # The fields the record has, in one pass; only the (few) values that JSON cannot hold as
    # they are get a second look.
    out = {name: value for name in fields if (value := record.get(name)) is not None}
    times: list[str] = []
    for name, value in out.items():
        cls = value.__class__
        if cls is str or cls is int or cls is bool or cls is float:
            continue
        if isinstance(value, datetime):
            times.append(name)
        elif not isinstance(value, str | int | float | bool):
            out[name] = str(value)
    for name in times:
        out[name] = out[name].isoformat()
    if times:
        out["_dt"] = times
    return {k: v for k, v in out.items() if v != ""} if "" in out.values() else out


def _restore(compact: Mapping[str, Any], original: str | None) -> dict[str, Any]:
    record = {k: v for k, v in compact.items() if k != "_dt"}
    for name in compact.get("_dt", ()):
        record[name] = datetime.fromisoformat(compact[name])
    if original is not None:
        record["_original"] = original
    return record


def _rebuild(slot: Mapping[str, Any], reparse: Reparse | None) -> dict[str, Any]:
    """The record of a slot: its message parsed again, else (no message) its compact copy."""
    original = slot.get("original")
    if original is None:
        return _restore(slot.get("compact") or {"type": slot["type"]}, None)
    try:
        return dict((reparse or parse_line)(original))
    except DecryptscopeError:
        return _restore(slot.get("compact") or {"type": slot["type"]}, original)


def new_entry(key: str, now: float) -> dict[str, Any]:
    return {"v": ENTRY_VERSION, "key": key, "first": now, "last": now, "slots": []}


def _correlation(entry: Mapping[str, Any]) -> dict[str, Any] | None:
    slots = entry["slots"]
    if len(slots) < 2:
        return None
    return {"key": entry["key"], "joined": [s["type"] for s in slots], "count": len(slots)}


def _opens_entry(record: Mapping[str, Any], diagnosis: Diagnosis | None) -> bool:
    """Whether a record with no live entry of its session is worth keeping for a join: a
    failure, a ``show session id`` output, a TRAFFIC end the firewall gave a ``decrypt-*``
    reason, or a session the security policy allowed that ended ``policy-deny`` (how a
    decryption profile's block shows, KB 83656) - its DECRYPTION line may come after it."""
    if diagnosis is not None or record.get("type") == "SESSION":
        return True
    reason = record.get("session_end_reason")
    if not isinstance(reason, str):
        return False
    return reason.startswith("decrypt") or (
        reason == "policy-deny" and record.get("subtype") == "end"
    )


def observe(
    entry: dict[str, Any] | None,
    record: Mapping[str, Any],
    now: float,
    window_s: float,
    *,
    classifier: Classifier | None = None,
    reparse: Reparse | None = None,
) -> tuple[dict[str, Any] | None, list[Emit]]:
    """Add ``record`` to its session's entry; return the entry to store (None: store nothing)
    and the events to emit."""
    classifier = classifier or classifier_for(None)
    original = record.get("_message") or record.get("_original")
    if not isinstance(original, str):
        original = None
    key = correlation_key(record)
    if key is None:
        return None, [Emit(record, classifier.classify(record), None, False, original)]
    live = (
        entry is not None and entry.get("v") == ENTRY_VERSION and not expired(entry, now, window_s)
    )
    if not live:
        entry = new_entry(key, now)
    else:
        entry = {**entry, "slots": [dict(s) for s in entry["slots"]]}
    rtype = record["type"]
    # One slot per log type: a newer record of the same type (TRAFFIC start -> end) replaces it.
    others = [s for s in entry["slots"] if s["type"] != rtype]
    others_records = [_rebuild(s, reparse) for s in others]
    diagnosis = classifier.classify(record, others_records)
    if not live and not _opens_entry(record, diagnosis):
        return None, [Emit(record, diagnosis, None, False, original)]
    slot: dict[str, Any] = {
        "type": rtype,
        "original": original,
        "cause": diagnosis.cause if diagnosis else None,
        "confidence": diagnosis.confidence if diagnosis else None,
    }
    if original is None:
        # nothing to parse again later: keep what the catalogue reads
        slot["compact"] = _compact(record, _compact_fields(classifier))
    entry["slots"] = [*others, slot]
    entry["last"] = max(float(entry["last"]), now)
    correlation = _correlation(entry)
    emits = [Emit(record, diagnosis, correlation, False, original)]
    for index, other in enumerate(others):
        related = [record, *(r for i, r in enumerate(others_records) if i != index)]
        again = classifier.classify(others_records[index], related)
        cause = again.cause if again else None
        confidence = again.confidence if again else None
        if cause == other["cause"] and confidence == other["confidence"]:
            continue
        other["cause"], other["confidence"] = cause, confidence
        emits.append(Emit(others_records[index], again, correlation, True, other["original"]))
    return entry, emits


class Sessions:
    """Correlation entries in memory for offline runs: a bounded mapping (the entries written
    longest ago are evicted first) that ``pipeline.chain`` reads and whose changes it returns
    (``apply``)."""

    def __init__(self, window_s: float = 120.0, max_entries: int = 200_000) -> None:
        if window_s <= 0 or max_entries <= 0:
            raise ValueError("window_s and max_entries must be positive")
        self.window_s = window_s
        self.max_entries = max_entries
        self.entries: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self.correlated = 0  # sessions where two or more records were joined
        self.evicted = 0  # entries dropped to respect max_entries
        self.expired = 0

    def get(self, key: str, default: Any = None) -> Any:
        return self.entries.get(key, default)

    def __len__(self) -> int:
        return len(self.entries)

    def apply(self, changes: Mapping[str, dict[str, Any] | None], joined: int = 0) -> None:
        """Store a batch's changes (None deletes); ``joined`` sessions were joined by it."""
        entries = self.entries
        for key, entry in changes.items():
            if entry is None:
                entries.pop(key, None)
                continue
            entries[key] = entry
            entries.move_to_end(key)
        self.correlated += joined
        while len(entries) > self.max_entries:
            entries.popitem(last=False)
            self.evicted += 1

    def expire(self, now: float) -> int:
        """Drop entries idle for longer than the window (oldest first); returns how many."""
        dropped = 0
        entries = self.entries
        while entries:
            key, entry = next(iter(entries.items()))
            if not expired(entry, now, self.window_s):
                break
            del entries[key]
            dropped += 1
        self.expired += dropped
        return dropped
