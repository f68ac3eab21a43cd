"""The Kafka contract: message keys, header names, dead letters, failure records, window counts.

Everything that crosses a topic is defined here once, for the ingest (``panos.raw``), the worker
(``panos.events``, ``panos.dlq``, the correlation changelog), the spike detector (window counts)
and the ``dlq`` command:

* ``panos.raw``: the syslog message bytes as received; key: the firewall serial (``raw_key``),
  else the sender's address; headers ``sender``, ``received_at`` (epoch ms), ``cut`` (the
  ingest kept only the first N bytes of an over-long message) and, on a re-published dead
  letter, ``dlq_replay`` (where the dead letter came from).
* ``panos.events``: one ECS document as JSON; key ``serial:sessionid`` (``session_key``), so
  that a session's documents share a partition; header ``doc_id`` (the Elasticsearch ``_id``,
  the same on every version of a document).
* ``panos.dlq``: a dead letter (``dead_letter``): the original bytes, where they came from,
  the stage and bounded error type, a message, the pipeline version and the time.
* ``panos.alerts``: an alert document (``pipeline.alerting.build_alert``) as JSON, keyed by
  its id.
* window counts: a worker's failures of one cause in one alert window (``WindowCount``, with
  its failures per firewall), keyed by cause so that one detector sees every worker's part of
  a cause; and the change points a worker saw (``ChangeNotice``), sent to every partition of
  the same topic so that each cause's detector knows every firewall's changes.

Pure: no Kafka client here, only what goes into and comes out of one.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from pipeline import __version__

SENDER_HEADER = "sender"
RECEIVED_HEADER = "received_at"
CUT_HEADER = "cut"
REPLAY_HEADER = "dlq_replay"
DOC_ID_HEADER = "doc_id"

# A serial is at most this long (PAN-OS serials have 12 to 15 characters).
MAX_SERIAL = 32
# The part of an over-long original kept in a dead letter (the DLQ is for reading, not storage).
MAX_ORIGINAL_BYTES = 256 * 1024


# --- keys --------------------------------------------------------------------------------------


def raw_key(message: bytes, sender_ip: str) -> bytes:
    """The ``panos.raw`` key: the firewall serial without a full parse, else the sender's IP.

    In PAN-OS CSV the serial is the 3rd comma-separated field counted from the start of the
    message: the syslog header and FUTURE_USE ``1`` make field 1, receive_time field 2."""
    first = message.find(b",")
    if first > 0:
        second = message.find(b",", first + 1)
        if second > 0:
            third = message.find(b",", second + 1)
            if third > second + 1 and third - second - 1 <= MAX_SERIAL:
                serial = message[second + 1 : third]
                if serial.isalnum():
                    return serial
    return sender_ip.encode()


def failure_counts_topic(worker_id: str) -> str:
    """The topic of one deployment's window counts (internal: named after its worker id, so
    that two deployments on one cluster do not mix their counts)."""
    return f"{worker_id}-failure-counts"


def session_key(serial: object, sessionid: object) -> str:
    """``serial:sessionid``, the identity of one session on one firewall (either part may be
    missing: it is then empty)."""
    return f"{'' if serial is None else serial}:{'' if sessionid is None else sessionid}"


def header(headers: Any, name: str) -> bytes | None:
    """The value of header ``name`` in Kafka headers (a list of pairs or a dict), or None."""
    if not headers:
        return None
    if isinstance(headers, Mapping):
        value = headers.get(name)
    else:
        value = next((v for k, v in headers if k == name), None)
    if value is None or isinstance(value, bytes):
        return value
    return str(value).encode()


# --- dead letters ------------------------------------------------------------------------------


def dead_letter(
    original: bytes | str | None,
    *,
    stage: str,
    error_type: str,
    message: str,
    topic: str | None = None,
    partition: int | None = None,
    offset: int | None = None,
    replay_of: str | None = None,
    time: datetime | None = None,
) -> dict[str, Any]:
    """The dead letter for ``original`` that failed at ``stage`` with ``error_type``.

    The original is text when it is UTF-8, else base64 in ``original_b64``. ``replay_of`` is
    set when the message was itself a dead letter re-published by ``decryptscope dlq replay``
    (the ``topic/partition/offset`` of that first dead letter)."""
    letter: dict[str, Any] = {}
    if isinstance(original, str):
        letter["original"] = original[:MAX_ORIGINAL_BYTES]
    elif original is not None:
        raw = bytes(original[:MAX_ORIGINAL_BYTES])
        try:
            letter["original"] = raw.decode("utf-8")
        except UnicodeDecodeError:
            letter["original_b64"] = base64.b64encode(raw).decode("ascii")
    else:
        letter["original"] = None
    letter.update(
        topic=topic,
        partition=partition,
        offset=offset,
        stage=stage,
        error_type=error_type,
        message=message,
        pipeline_version=__version__,
        time=(time or datetime.now(UTC)).isoformat(),
    )
    if replay_of is not None:
        letter["replay_of"] = replay_of
    return letter


def from_error(
    original: bytes | str | None,
    error: BaseException,
    *,
    stage: str | None = None,
    topic: str | None = None,
    partition: int | None = None,
    offset: int | None = None,
    replay_of: str | None = None,
) -> dict[str, Any]:
    """A dead letter from an exception: the project's errors carry stage and error_type."""
    return dead_letter(
        original,
        stage=stage or getattr(error, "stage", "pipeline"),
        error_type=getattr(error, "error_type", type(error).__name__),
        message=str(error) or type(error).__name__,
        topic=topic,
        partition=partition,
        offset=offset,
        replay_of=replay_of,
    )


def encode_dead_letter(letter: Mapping[str, Any]) -> bytes:
    return orjson.dumps(letter)


def decode_dead_letter(value: bytes) -> dict[str, Any]:
    """A dead letter from its Kafka value; ValueError when it is not one."""
    letter = orjson.loads(value)
    if not isinstance(letter, dict) or "stage" not in letter:
        raise ValueError("not a dead letter")
    return letter


def original_bytes(letter: Mapping[str, Any]) -> bytes:
    """The original message of a dead letter, as bytes (for replaying it)."""
    if letter.get("original_b64"):
        return base64.b64decode(letter["original_b64"])
    return (letter.get("original") or "").encode("utf-8")


# --- alerts ------------------------------------------------------------------------------------


def encode_alert(alert: Mapping[str, Any]) -> bytes:
    """The value of an alert on the alerts topic (the alert document as JSON)."""
    return orjson.dumps(alert)


# --- failures and window counts ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Failure:
    """What spike detection needs of one diagnosed failure."""

    cause: str
    server: str = ""
    rule: str = ""
    source: str = ""
    event_id: str = ""
    category: str = ""
    mode: str = ""
    remediation: str = ""
    firewall: str = ""  # serial


def failure_of(record: Mapping[str, Any], diagnosis: Any, event_id: str) -> Failure:
    """The failure of a parsed record and its Diagnosis; the server is what the client asked
    for (SNI), else the certificate's name, else the destination address."""
    server = record.get("sni") or record.get("cn") or record.get("dst") or ""
    return Failure(
        cause=diagnosis.cause,
        server=str(server),
        rule=str(record.get("rule") or ""),
        source=str(record.get("src") or ""),
        event_id=event_id,
        category=diagnosis.category,
        mode=diagnosis.mode,
        remediation=diagnosis.remediation,
        firewall=str(record.get("serial") or ""),
    )


# Distinct values a window count keeps per list (servers, rules, sources).
MAX_DISTINCT = 2000
SAMPLES = 5


@dataclass(slots=True)
class WindowCount:
    """One worker's failures of one cause in one alert window: the message a worker sends to
    the spike detector when the window closes (and what the detector adds up)."""

    cause: str
    window: int  # window number: start time // window_s
    window_s: int
    count: int = 0
    category: str = ""
    mode: str = ""
    remediation: str = ""
    servers: dict[str, int] = field(default_factory=dict)
    rules: dict[str, int] = field(default_factory=dict)
    sources: dict[str, int] = field(default_factory=dict)
    samples: list[str] = field(default_factory=list)
    firewalls: dict[str, int] = field(default_factory=dict)  # serial -> failures

    def add(self, failure: Failure, n: int = 1) -> None:
        self.count += n
        _tally(self.servers, failure.server, n)
        _tally(self.rules, failure.rule, n)
        _tally(self.sources, failure.source, n)
        _tally(self.firewalls, failure.firewall, n)
        if failure.event_id and len(self.samples) < SAMPLES:
            self.samples.append(failure.event_id)
        if not self.category:
            self.category = failure.category
        if not self.mode:
            self.mode = failure.mode
        if not self.remediation:
            self.remediation = failure.remediation

    def merge(self, other: WindowCount) -> None:
        """Add another worker's count of the same cause and window."""
        self.count += other.count
        for mine, theirs in (
            (self.servers, other.servers),
            (self.rules, other.rules),
            (self.sources, other.sources),
            (self.firewalls, other.firewalls),
        ):
            for value, n in theirs.items():
                _tally(mine, value, n)
        room = SAMPLES - len(self.samples)
        if room > 0:
            self.samples.extend(other.samples[:room])
        self.category = self.category or other.category
        self.mode = self.mode or other.mode
        self.remediation = self.remediation or other.remediation


def _tally(counts: dict[str, int], value: str, n: int) -> None:
    if not value:
        return
    if value in counts:
        counts[value] += n
    elif len(counts) < MAX_DISTINCT:
        counts[value] = n


_WINDOW_FIELDS = (
    "cause",
    "window",
    "window_s",
    "count",
    "category",
    "mode",
    "remediation",
    "servers",
    "rules",
    "sources",
    "samples",
    "firewalls",
)


def encode_window_count(count: WindowCount) -> bytes:
    return orjson.dumps({name: getattr(count, name) for name in _WINDOW_FIELDS})


def decode_window_count(value: bytes | Mapping[str, Any]) -> WindowCount:
    """A window count from its Kafka value; ValueError when it is not one."""
    data = orjson.loads(value) if isinstance(value, bytes | bytearray) else value
    if not isinstance(data, Mapping) or CHANGE_TAG in data:
        raise ValueError("not a window count")
    try:
        return WindowCount(
            cause=str(data["cause"]),
            window=int(data["window"]),
            window_s=int(data["window_s"]),
            count=int(data["count"]),
            category=str(data.get("category") or ""),
            mode=str(data.get("mode") or ""),
            remediation=str(data.get("remediation") or ""),
            servers=_counts(data.get("servers")),
            rules=_counts(data.get("rules")),
            sources=_counts(data.get("sources")),
            samples=[str(s) for s in (data.get("samples") or ())][:SAMPLES],
            firewalls=_counts(data.get("firewalls")),
        )
    except (KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"not a window count: {exc}") from exc


def _counts(value: Any) -> dict[str, int]:
    if not value:
        return {}
    return {str(k): int(n) for k, n in dict(value).items()}


def window_counts(failures: Iterable[tuple[float, Failure]], window_s: int) -> list[WindowCount]:
    """Window counts of (time, failure) pairs (a convenience for tests and one-shot use)."""
    by_key: dict[tuple[str, int], WindowCount] = {}
    for when, failure in failures:
        window = int(when // window_s)
        slot = by_key.get((failure.cause, window))
        if slot is None:
            slot = by_key[(failure.cause, window)] = WindowCount(failure.cause, window, window_s)
        slot.add(failure)
    return list(by_key.values())


# --- change points -------------------------------------------------------------------------------

CHANGE_TAG = "change"


@dataclass(frozen=True, slots=True)
class ChangeNotice:
    """A change point as the regression detector needs it: which firewall (empty: every
    firewall), when the worker saw it (epoch seconds of processing time, what alert windows
    count in), when it happened (the log's own time) and what it was."""

    id: str
    kind: str
    firewall: str
    name: str
    seen: float
    time: str  # ISO 8601
    summary: str


def change_notice(change: Any, seen: float) -> ChangeNotice:
    """The notice of a ``pipeline.changes.ChangePoint`` a worker saw at ``seen``."""
    return ChangeNotice(
        id=change.id,
        kind=change.kind,
        firewall=change.firewall,
        name=change.name,
        seen=seen,
        time=change.time.isoformat(),
        summary=change.summary,
    )


def encode_change_notice(notice: ChangeNotice) -> bytes:
    return orjson.dumps(
        {
            CHANGE_TAG: {
                "id": notice.id,
                "kind": notice.kind,
                "firewall": notice.firewall,
                "name": notice.name,
                "seen": notice.seen,
                "time": notice.time,
                "summary": notice.summary,
            }
        }
    )


def decode_change_notice(value: bytes | Mapping[str, Any]) -> ChangeNotice:
    """A change notice from its Kafka value; ValueError when it is not one."""
    data = orjson.loads(value) if isinstance(value, bytes | bytearray) else value
    try:
        body = data[CHANGE_TAG]
        return ChangeNotice(
            id=str(body["id"]),
            kind=str(body["kind"]),
            firewall=str(body.get("firewall") or ""),
            name=str(body.get("name") or ""),
            seen=float(body["seen"]),
            time=str(body.get("time") or ""),
            summary=str(body.get("summary") or ""),
        )
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        raise ValueError(f"not a change notice: {exc}") from exc


def decode_counts_message(value: bytes) -> WindowCount | ChangeNotice:
    """What the window-counts topic carries: a window count or a change notice; ValueError
    for anything else."""
    data = orjson.loads(value)
    if isinstance(data, Mapping) and CHANGE_TAG in data:
        return decode_change_notice(data)
    return decode_window_count(data)
