"""The pure per-batch pipeline: raw messages + correlation state -> documents, dead letters,
state changes and counts.

``Chain.run(messages, state, now)`` frames and parses every message, diagnoses it with the
lines of its session that ``state`` holds (``pipeline.correlate``), and turns every emitted
record into its ECS document (JSON bytes, ``_id``, daily index, Kafka key). Nothing here touches
Kafka, Faust, Elasticsearch or Prometheus: the worker moves the results (bulk index, publish,
write the state changes to its changelogged table, send window counts, count metrics) and the
offline commands (``parse``, ``analyze``, ``diagnose``) run the same chain over files, so both
give the same verdict for the same lines.

Within one batch:

* every correlation key is written at most once: ``BatchResult.state`` holds the last entry of
  each session the batch changed (None: delete), and only sessions that can still be joined
  get one (``pipeline.correlate.observe``);
* a document re-emitted because a later line of its session changed its diagnosis replaces
  its earlier version (same ``_id``): a batch carries each document once, in its latest form;
* a message that fails (parse, diagnosis, ECS) becomes a dead letter and leaves no state.

Change points (``pipeline.changes``): a SYSTEM or CONFIG record that shows a change, and the
first record of a firewall whose config version stepped, each add a document of their own
(``event.dataset`` decryptscope.change) after the record's, and the change to
``BatchResult.changes``. The config version each firewall last wrote is the caller's state
like the correlation table: ``run(..., versions=...)`` reads it, ``BatchResult.versions``
holds what the batch changed. TLS session ends and DECRYPTION logs get
``decryptscope.decrypted`` (``pipeline.coverage``) and are counted per firewall.

``now`` is the correlation clock: the worker passes its wall time; offline runs
(``ChainConfig.event_time``) move the clock to each record's own time, starting from ``now``
(the clock the previous batch ended with, ``BatchResult.clock``).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from pipeline import changes as change_points
from pipeline import correlate, coverage, ecs, ocsf, wire
from pipeline.certificates import cert_key
from pipeline.diagnosis import Classifier, Diagnosis, classifier_for
from pipeline.errors import DecryptscopeError, FramingError
from pipeline.panos import parse_line
from pipeline.panos.values import record_time

# The TRAFFIC flags bit of a session the firewall decrypted (PAN-OS syslog field descriptions,
# "Flags": 0x01000000 decrypted).
SSL_DECRYPTED_FLAG = 0x01000000
# One message in this many has its parse time sampled for the latency histogram (timing every
# message would cost more than the figure is worth).
PARSE_SAMPLE_EVERY = 16
_MISSING = object()
# Log types whose records can show a change point (the others only through their version).
_CHANGE_TYPES = frozenset({"SYSTEM", "CONFIG"})
_COVERAGE_TYPES = coverage.COVERAGE_TYPES
_NO_VERSION = (None,)  # a firewall whose config version is not known yet


class StageError(DecryptscopeError):
    """An unexpected exception in a step of the chain (a bug met on odd input): its own error
    type, the step as its stage and the exception's class in its message."""

    def __init__(self, stage: str, error: BaseException) -> None:
        super().__init__(f"{type(error).__name__}: {error}", error_type="internal")
        self.stage = stage


@dataclass(frozen=True, slots=True)
class Message:
    """One raw message and where it came from (topic, partition, offset are for dead
    letters); ``cut`` is the ingest's ``cut`` header, ``replay_of`` its ``dlq_replay`` one."""

    value: bytes | str
    topic: str | None = None
    partition: int | None = None
    offset: int | None = None
    cut: str | None = None
    replay_of: str | None = None


@dataclass(slots=True)
class Document:
    """One ECS document and what produced it."""

    doc_id: str
    index: str  # <index_prefix>-YYYY.MM.DD of its @timestamp
    key: bytes  # serial:sessionid, the panos.events key
    source: bytes  # the ECS document as JSON
    record: Mapping[str, Any]
    diagnosis: Diagnosis | None
    correlation: dict[str, Any] | None
    message: int  # position in the batch of the message that produced this version
    session: str | None  # the session it belongs to (key@first seen), None when not joinable
    ocsf: bytes | None = None  # its OCSF event as JSON (ChainConfig.ocsf), None: no OCSF form
    change: change_points.ChangePoint | None = None  # set on a change point's own document


@dataclass(slots=True)
class Counts:
    """What the metrics count, per batch."""

    records: Counter[str] = field(default_factory=Counter)  # by log type
    end_reasons: Counter[str] = field(default_factory=Counter)  # TRAFFIC session end reasons
    decrypted: int = 0  # TRAFFIC records of decrypted sessions
    failures: Counter[tuple[str, str, str]] = field(default_factory=Counter)  # cause, cat, mode
    dead_letters: Counter[tuple[str, str]] = field(default_factory=Counter)  # stage, error type
    joined: int = 0  # sessions whose second line arrived in this batch
    parse_seconds: list[float] = field(default_factory=list)  # sampled per-message parse times
    # TLS sessions seen decrypted or not: (log type, mode, decrypted, firewall serial)
    tls_sessions: Counter[tuple[str, str, bool, str]] = field(default_factory=Counter)
    # certificate key -> the batch's last DECRYPTION record that showed it
    certificates: dict[str, Mapping[str, Any]] = field(default_factory=dict)


@dataclass(slots=True)
class BatchResult:
    documents: list[Document]
    dead_letters: list[tuple[int, dict[str, Any]]]  # (message position, dead letter)
    state: dict[str, dict[str, Any] | None]  # correlation key -> new entry (None: delete)
    writers: dict[str, int]  # correlation key -> position of the message that wrote it
    failures: list[wire.Failure]  # one per failure document first emitted in this batch
    counts: Counts
    clock: float  # the correlation clock after the batch (the latest record time offline)
    changes: list[change_points.ChangePoint] = field(default_factory=list)
    # firewall serial -> (config version column, release) it wrote last, where the batch changed it
    versions: dict[str, tuple[str, str | None]] = field(default_factory=dict)


@dataclass(frozen=True)
class ChainConfig:
    index_prefix: str = "decryptscope-events"
    window_s: float = 120.0
    default_tz: str = "UTC"
    tz_for: Callable[[str], str] | None = None
    diagnose: bool = True
    correlate: bool = True
    # Offline: correlate by the records' own times instead of the caller's clock.
    event_time: bool = False
    # Also give each document its OCSF event (pipeline.ocsf).
    ocsf: bool = False
    # Offline: the serial of `show session id` outputs pasted without one (a CLI output does
    # not say which firewall it came from).
    session_serial: str | None = None
    # Change points: their documents, and the firewalls' config versions followed.
    changes: bool = True

    @classmethod
    def from_settings(cls, settings: Any, **overrides: Any) -> ChainConfig:
        values: dict[str, Any] = {
            "index_prefix": settings.index_prefix,
            "window_s": settings.correlation_window_s,
            "default_tz": settings.default_timezone,
            "tz_for": settings.timezone_for if settings.device_timezones else None,
            "ocsf": settings.ocsf_enabled,
        }
        values.update(overrides)
        return cls(**values)


class Chain:
    """The compiled chain for one configuration; ``run`` is pure given its arguments."""

    def __init__(
        self,
        config: ChainConfig,
        *,
        classifier: Classifier | None = None,
        parse: Callable[[Any], dict[str, Any]] | None = None,
    ) -> None:
        self.config = config
        self.classifier = classifier or classifier_for(None)
        self._tz = (config.default_tz, config.tz_for)
        if parse is not None:
            self.parse = parse  # type: ignore[method-assign]

    def parse(self, text: bytes | str) -> dict[str, Any]:
        """One message -> one record (``pipeline.panos.parse_line`` with the time zones of
        the configuration); a ``parse`` given to the constructor replaces it."""
        default_tz, tz_for = self._tz
        return parse_line(text, default_tz=default_tz, tz_for=tz_for)

    def run(
        self,
        messages: Sequence[Message],
        state: Mapping[str, Any],
        now: float = 0.0,
        versions: Mapping[str, tuple[str, str | None]] | None = None,
    ) -> BatchResult:
        """``versions``: the config version each firewall wrote last (None: none known)."""
        counts = Counts()
        documents: list[Document] = []
        latest: dict[str, int] = {}  # document id -> position in documents of its last version
        letters: list[tuple[int, dict[str, Any]]] = []
        changes: dict[str, dict[str, Any] | None] = {}
        writers: dict[str, int] = {}
        failures: list[wire.Failure] = []
        clock = now
        event_clock = self.config.event_time
        parse = self.parse
        perf = time.perf_counter
        sampled = counts.parse_seconds
        track = self.config.changes
        # The firewalls' config versions as the batch goes (a copy: a handful of firewalls);
        # what changed goes to new_versions.
        current: dict[str, tuple[str, str | None]] = dict(versions) if versions else {}
        version_of = current.get
        new_versions: dict[str, tuple[str, str | None]] = {}
        found: list[change_points.ChangePoint] = []
        for position, message in enumerate(messages):
            value = message.value
            try:
                if message.cut is not None:
                    raise FramingError(
                        "message longer than max_message_bytes: ingest kept its first "
                        f"{message.cut} bytes",
                        error_type="oversized",
                    )
                if position % PARSE_SAMPLE_EVERY == 0:
                    started = perf()
                    record = parse(value)
                    sampled.append(perf() - started)
                else:
                    record = parse(value)
                if event_clock:
                    when = record_time(record)
                    if when is not None:
                        clock = when.timestamp()
                self._apply_session_serial(record)
                key, held, entry, emits = self._diagnose(record, state, changes, clock)
                first_id = ""
                for emit in emits:
                    doc_id = self._document(emit, position, documents, latest, entry, counts=counts)
                    first_id = first_id or doc_id
                seen = version = None
                # Only SYSTEM and CONFIG records, and a record whose firewall wrote another
                # config version last, take the slow path.
                if track and (
                    record.get("type") in _CHANGE_TYPES
                    or (version_of(record.get("serial")) or _NO_VERSION)[0]
                    != record.get("config_ver")
                ):
                    seen, version = self._changes(record, current)
                    if seen:
                        for change in seen:
                            self._change_document(change, record, position, documents, latest)
            except Exception as exc:
                if not isinstance(exc, DecryptscopeError):
                    exc = StageError("chain", exc)
                letter = wire.from_error(
                    value,
                    exc,
                    topic=message.topic,
                    partition=message.partition,
                    offset=message.offset,
                    replay_of=message.replay_of,
                )
                letters.append((position, letter))
                counts.dead_letters[(letter["stage"], letter["error_type"])] += 1
                continue
            if version is not None:
                current[version[0]] = new_versions[version[0]] = version[1]
            if seen:
                found.extend(seen)
            if entry is not None and key is not None:
                if held < 2 <= len(entry["slots"]):
                    counts.joined += 1
                changes[key] = entry
                writers[key] = position
            self._count(record, emits, first_id, counts, failures)
        return BatchResult(
            documents, letters, changes, writers, failures, counts, clock, found, new_versions
        )

    # -- steps ---------------------------------------------------------------------------

    def _apply_session_serial(self, record: dict[str, Any]) -> None:
        serial = self.config.session_serial
        if serial and record.get("type") == "SESSION" and not record.get("serial"):
            record["serial"] = serial

    def _diagnose(
        self,
        record: dict[str, Any],
        state: Mapping[str, Any],
        changes: Mapping[str, Any],
        now: float,
    ) -> tuple[str | None, int, dict[str, Any] | None, list[correlate.Emit]]:
        """(correlation key, records the session held before, entry to store, emits)."""
        if not self.config.diagnose:
            return None, 0, None, [correlate.Emit(record, None, None)]
        key = correlate.correlation_key(record) if self.config.correlate else None
        before = None
        try:
            if key is None:
                diagnosis = self.classifier.classify(record)
                return None, 0, None, [correlate.Emit(record, diagnosis, None)]
            before = changes.get(key, _MISSING)
            if before is _MISSING:
                before = state.get(key)
            entry, emits = correlate.observe(
                before,
                record,
                now,
                self.config.window_s,
                classifier=self.classifier,
                reparse=self.parse,
            )
        except DecryptscopeError:
            raise
        except Exception as exc:
            raise StageError("diagnose", exc) from exc
        held = 0
        if before is not None and not correlate.expired(before, now, self.config.window_s):
            held = len(before["slots"])
        return key, held, entry, emits

    def _document(
        self,
        emit: correlate.Emit,
        position: int,
        documents: list[Document],
        latest: dict[str, int],
        entry: Mapping[str, Any] | None,
        *,
        counts: Counts,
    ) -> str:
        """Add the document of ``emit``; returns its id."""
        record = emit.record
        try:
            doc = ecs.to_ecs(
                record,
                emit.diagnosis,
                correlation=emit.correlation,
                original=emit.original if emit.reemit else None,
            )
            log_type = record.get("type")
            if log_type in _COVERAGE_TYPES:
                self._coverage(doc, record, log_type, emit, counts)
            source = orjson.dumps(doc)
        except DecryptscopeError:
            raise
        except Exception as exc:
            raise StageError("ecs", exc) from exc
        converted = None
        if self.config.ocsf:
            try:
                event = ocsf.to_ocsf(doc)
                converted = orjson.dumps(event) if event is not None else None
            except DecryptscopeError:
                raise
            except Exception as exc:
                raise StageError("ocsf", exc) from exc
        doc_id = ecs.document_id(record)
        session = f"{entry['key']}@{entry['first']}" if entry is not None else None
        document = Document(
            doc_id,
            ecs.index_name(doc["@timestamp"], self.config.index_prefix),
            wire.session_key(record.get("serial"), record.get("sessionid")).encode(),
            source,
            record,
            emit.diagnosis,
            emit.correlation,
            position,
            session,
            converted,
        )
        # A re-emitted version replaces the batch's earlier version where it stood; a message
        # repeated as it was (same id) stays a document of its own.
        at = latest.get(doc_id) if emit.reemit else None
        if at is None:
            latest[doc_id] = len(documents)
            documents.append(document)
        else:
            documents[at] = document
        return doc_id

    def _coverage(
        self,
        doc: dict[str, Any],
        record: Mapping[str, Any],
        log_type: str,
        emit: correlate.Emit,
        counts: Counts,
    ) -> None:
        """Mark a TLS session's document decrypted or not; count the record once (not its
        re-emitted versions), and the certificate a DECRYPTION record shows."""
        decrypted = coverage.mark(doc, record, emit.diagnosis is not None)
        if emit.reemit:
            return
        if decrypted is not None:
            serial = record.get("serial") or ""
            mode = doc["decryptscope"].get("mode") or "unknown"
            counts.tls_sessions[(log_type, mode, decrypted, serial)] += 1
        if log_type == "DECRYPTION" and record.get("notafter") is not None:
            # the fingerprint as written (the worker normalises it once per certificate)
            key = record.get("fingerprint") or cert_key(record)
            if key is not None:
                counts.certificates[key] = record

    def _changes(
        self, record: Mapping[str, Any], known: Mapping[str, tuple[str, str | None]]
    ) -> tuple[list[change_points.ChangePoint] | None, tuple[str, Any] | None]:
        """(the change points a record shows, the firewall's new config version entry);
        (None, None) for the common record: no change, its firewall's version as known."""
        seen = None
        if record.get("type") in _CHANGE_TYPES:
            try:
                change = change_points.rules().match(record, ecs.document_id(record))
            except DecryptscopeError:
                raise
            except Exception as exc:
                raise StageError("changes", exc) from exc
            if change is not None:
                seen = [change]
        serial = record.get("serial")
        raw = record.get("config_ver")
        if not serial or not raw:
            return seen, None
        last = known.get(serial)
        if last is not None and last[0] == raw:
            return seen, None
        release = change_points.release_of(raw)
        if last is not None and last[1] is not None and release is not None:
            if release != last[1]:
                step = change_points.rules().version_step(record, last, (raw, release))
                if step is not None:
                    seen = [*(seen or ()), step]
        elif last is not None and release is None:
            # A value that names no release (anonymised samples write 0): keep the last one.
            return seen, None
        return seen, (serial, (raw, release))

    def _change_document(
        self,
        change: change_points.ChangePoint,
        record: Mapping[str, Any],
        position: int,
        documents: list[Document],
        latest: dict[str, int],
    ) -> None:
        try:
            doc = change_points.to_ecs(change)
            source = orjson.dumps(doc)
        except DecryptscopeError:
            raise
        except Exception as exc:
            raise StageError("changes", exc) from exc
        document = Document(
            change.id,
            ecs.index_name(doc["@timestamp"], self.config.index_prefix),
            wire.session_key(change.firewall, None).encode(),
            source,
            record,
            None,
            None,
            position,
            None,
            None,
            change,
        )
        at = latest.get(change.id)
        if at is None:
            latest[change.id] = len(documents)
            documents.append(document)
        else:
            documents[at] = document

    def _count(
        self,
        record: Mapping[str, Any],
        emits: list[correlate.Emit],
        doc_id: str,
        counts: Counts,
        failures: list[wire.Failure],
    ) -> None:
        log_type = record.get("type") or "unknown"
        counts.records[log_type] += 1
        if log_type == "TRAFFIC":
            reason = record.get("session_end_reason")
            if reason is not None:
                counts.end_reasons[reason] += 1
            flags = record.get("flags")
            if isinstance(flags, int) and flags & SSL_DECRYPTED_FLAG:
                counts.decrypted += 1
        first = emits[0] if emits else None
        diagnosis = first.diagnosis if first is not None else None
        if diagnosis is not None:
            counts.failures[(diagnosis.cause, diagnosis.category, diagnosis.mode)] += 1
            failures.append(wire.failure_of(record, diagnosis, doc_id))


def run_all(
    chain: Chain,
    messages: Sequence[Message],
    state: correlate.Sessions,
    now: float = 0.0,
    versions: dict[str, tuple[str, str | None]] | None = None,
) -> BatchResult:
    """``chain.run`` over ``state`` (an in-memory session store) with its changes applied;
    ``versions`` (the firewalls' config versions) is updated in place too."""
    result = chain.run(messages, state, now, versions)
    state.apply(result.state, result.counts.joined)
    state.expire(result.clock)
    if versions is not None:
        versions.update(result.versions)
    return result
