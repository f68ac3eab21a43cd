"""``decryptscope dlq show|replay``: read the dead-letter topic, and send dead letters back.

``show`` prints one line per dead letter (time, stage, error type, message, where the original
came from, the start of the original), or each dead letter as JSON with ``--json``.

``replay`` re-publishes the original bytes of dead letters to the raw topic, keyed as the
ingest keys them, with the header ``dlq_replay`` naming the dead letter (``topic/partition/
offset`` in the dead-letter topic; for a dead letter that is itself the result of a replay, the
first one of its chain). After a fix (a parser release, a corrected setting) they are indexed;
one that still fails comes back to the dead-letter topic once, with ``replay_of`` set.

Which dead letters: without ``--since`` and ``--stage``, those that arrived since the last such
replay (a consumer group of the dead-letter topic records how far replays went), so running it
twice sends nothing twice. ``--since`` and ``--stage`` select a window or a stage instead, as a
one-off. In every case a dead letter that is itself a failed replay is not sent
(``--include-replayed``: the newest of each chain is), nor one whose replay already came back,
so replaying never makes the dead-letter topic grow by itself. Only dead letters whose
original came from the raw topic are replayed (a document Elasticsearch refused is no syslog).

Reading goes up to the end the topic had when the command started; ``--since`` takes a
duration such as ``90m`` or an ISO time.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from pipeline import kafka_config, wire
from pipeline.commands.recommend import parse_since as parse_window
from pipeline.errors import ConfigError, SinkError
from pipeline.settings import Settings

PREVIEW_CHARS = 100
READ_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class Letter:
    """One dead letter as read from the dead-letter topic."""

    position: str  # topic/partition/offset in the dead-letter topic
    key: bytes | None
    timestamp_ms: int
    body: dict[str, Any]

    @property
    def root(self) -> str:
        """The first dead letter of this one's replay chain (itself when it is no replay)."""
        return self.body.get("replay_of") or self.position


# --- pure -----------------------------------------------------------------------------------
def parse_since(text: str, now: datetime) -> datetime | None:
    """A window as ``recommend --since`` takes it (``90m``, ``24h``, ``7d``; ``all``: None, the
    whole topic) before ``now``, or an ISO 8601 time (local time when it has no offset)."""
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        try:
            window = parse_window(text)
        except ConfigError:
            raise ConfigError(
                f"--since {text!r}: expected a window (90m, 24h, 7d, all) or an ISO time "
                "(2026-11-20T10:00, 2026-11-20T10:00+01:00)"
            ) from None
        return None if window is None else now - window
    return when if when.tzinfo is not None else when.astimezone()


def preview(letter: Letter, width: int = PREVIEW_CHARS) -> str:
    """The start of the original on one line (control characters escaped)."""
    body = letter.body
    if body.get("original_b64"):
        text = wire.original_bytes(body).decode("utf-8", "backslashreplace")
    else:
        text = body.get("original") or ""
    text = text[: width * 2].encode("unicode_escape").decode("ascii")
    return text if len(text) <= width else text[: width - 3] + "..."


def show_line(letter: Letter) -> str:
    body = letter.body
    source = f"{body.get('topic')}/{body.get('partition')}/{body.get('offset')}"
    message = " ".join(str(body.get("message") or "").split())
    if len(message) > 160:
        message = message[:157] + "..."
    replayed = f" [replay of {body['replay_of']}]" if body.get("replay_of") else ""
    return (
        f"{body.get('time')}  {body.get('stage')}  {body.get('error_type')}  "
        f"{source}{replayed}  {message}  | {preview(letter)}"
    )


def as_json(letter: Letter) -> bytes:
    return orjson.dumps({**letter.body, "dlq_position": letter.position})


def select(letters: Iterable[Letter], stage: str | None) -> list[Letter]:
    return [x for x in letters if stage is None or x.body.get("stage") == stage]


@dataclass
class Plan:
    send: list[Letter]
    already_back: int = 0  # replayed before and failed again: not sent again
    results_of_replay: int = 0  # dead letters that are themselves a failed replay
    not_raw: int = 0  # originals that did not come from the raw topic


def plan_replay(
    letters: list[Letter], selected: list[Letter], raw_topic: str, *, include_replayed: bool
) -> Plan:
    """Which of ``selected`` to send back, given every dead letter read (``letters``).

    A chain is a dead letter and the dead letters its replays produced (they name it in
    ``replay_of``). Without ``include_replayed`` a chain is sent only while nothing of it came
    back; with it, the newest dead letter of each chain that came back is sent once more."""
    newest: dict[str, Letter] = {}
    for letter in letters:
        if letter.body.get("replay_of"):
            known = newest.get(letter.root)
            if known is None or letter.timestamp_ms >= known.timestamp_ms:
                newest[letter.root] = letter
    plan = Plan(send=[])
    for letter in selected:
        if letter.body.get("topic") != raw_topic:
            plan.not_raw += 1
        elif letter.body.get("replay_of"):
            if include_replayed and newest.get(letter.root) is letter:
                plan.send.append(letter)
            else:
                plan.results_of_replay += 1
        elif letter.root in newest:
            plan.already_back += 1
        else:
            plan.send.append(letter)
    return plan


def replay_record(letter: Letter) -> tuple[bytes, bytes, list[tuple[str, bytes]]]:
    """Value, key and headers of the raw-topic message that replays ``letter``: the original
    bytes, the firewall serial (else the key the dead letter had, the ingest's fallback)."""
    value = wire.original_bytes(letter.body)
    fallback = (letter.key or b"").decode("utf-8", "replace")
    headers = [
        (wire.REPLAY_HEADER, letter.root.encode()),
        (wire.RECEIVED_HEADER, str(time.time_ns() // 1_000_000).encode()),
    ]
    return value, wire.raw_key(value, fallback), headers


# --- Kafka ----------------------------------------------------------------------------------
def replay_group(settings: Settings) -> str:
    """The consumer group whose committed offsets say how far replays have gone."""
    return f"{settings.worker_id}.dlq-replay"


class Reader:
    """Reads the dead-letter topic up to the end it had when opened. With a ``group``, reading
    starts where that group's last ``commit()`` left off (the beginning the first time)."""

    def __init__(self, settings: Settings, group: str | None = None) -> None:
        from kafka import KafkaConsumer, TopicPartition

        self.topic = settings.topic_dlq
        self.group = group
        self._consumer = KafkaConsumer(
            **kafka_config.consumer_kwargs(
                settings,
                enable_auto_commit=False,
                group_id=group,
                client_id="decryptscope-dlq",
                allow_auto_create_topics=False,  # a mistyped topic_dlq must not create one
            )
        )
        try:
            partitions = self._consumer.partitions_for_topic(self.topic)
            if not partitions:
                raise ConfigError(f"topic {self.topic} does not exist (setting topic_dlq)")
            self.tps = [TopicPartition(self.topic, p) for p in sorted(partitions)]
            self._consumer.assign(self.tps)
            self.ends: dict[Any, int] = self._consumer.end_offsets(self.tps)
        except BaseException:
            self._consumer.close()
            raise

    def __enter__(self) -> Reader:
        return self

    def __exit__(self, *_exc: Any) -> None:
        self._consumer.close()

    def read(self, since: datetime | None = None) -> list[Letter]:
        """From ``since``, else from the group's position, else from the beginning."""
        consumer = self._consumer
        if since is not None:
            stamp = int(since.timestamp() * 1000)
            found = consumer.offsets_for_times(dict.fromkeys(self.tps, stamp))
            for tp in self.tps:
                consumer.seek(tp, found[tp].offset if found.get(tp) else self.ends[tp])
        else:
            for tp in self.tps:
                done = consumer.committed(tp) if self.group else None
                if done is None:
                    consumer.seek_to_beginning(tp)
                else:
                    consumer.seek(tp, done)
        return self._drain()

    def commit(self) -> None:
        """Record that everything up to the end read has been replayed."""
        from kafka.structs import OffsetAndMetadata

        self._consumer.commit({tp: OffsetAndMetadata(end, "", -1) for tp, end in self.ends.items()})

    def _drain(self) -> list[Letter]:
        consumer, ends = self._consumer, self.ends
        by_partition: dict[int, list[Letter]] = {tp.partition: [] for tp in self.tps}
        deadline = time.monotonic() + READ_TIMEOUT_S
        while any(consumer.position(tp) < ends[tp] for tp in self.tps):
            if time.monotonic() > deadline:
                raise SinkError(f"could not read {self.topic} to its end in {READ_TIMEOUT_S}s")
            for tp, records in consumer.poll(timeout_ms=1000).items():
                for record in records:
                    if record.offset >= ends[tp]:
                        continue
                    try:
                        body = wire.decode_dead_letter(record.value)
                    except ValueError:
                        continue  # not a dead letter: nothing to show or replay
                    position = f"{tp.topic}/{tp.partition}/{record.offset}"
                    letter = Letter(position, record.key, record.timestamp, body)
                    by_partition[tp.partition].append(letter)
        return [letter for tp in self.tps for letter in by_partition[tp.partition]]


def read_letters(settings: Settings, since: datetime | None = None) -> list[Letter]:
    """Every dead letter from ``since`` (or the beginning), partition after partition, each
    in topic order."""
    with Reader(settings) as reader:
        return reader.read(since)


def publish(settings: Settings, letters: list[Letter]) -> int:
    """Send the replays to the raw topic with the ingest's producer settings; returns how many
    Kafka acknowledged (all of them, or an error)."""
    from kafka import KafkaProducer

    producer = KafkaProducer(**kafka_config.producer_kwargs(settings))
    try:
        futures = []
        for letter in letters:
            value, key, headers = replay_record(letter)
            futures.append(producer.send(settings.topic_raw, value=value, key=key, headers=headers))
        producer.flush(60)
        for future in futures:
            future.get(timeout=60)
        return len(futures)
    finally:
        producer.close(10)


# --- the command ----------------------------------------------------------------------------
def run(args: argparse.Namespace, settings: Settings) -> int:
    since = parse_since(args.since, datetime.now(UTC)) if args.since else None
    kafka_config.preflight(settings, "dlq")
    if args.action == "show":
        selected = select(read_letters(settings, since), args.stage)
        out = sys.stdout.buffer
        for letter in selected:
            out.write(as_json(letter) + b"\n" if args.json else show_line(letter).encode() + b"\n")
        out.flush()
        print(f"decryptscope dlq: {len(selected)} dead letters", file=sys.stderr)
        return 0
    # Without --since or --stage, a replay takes the dead letters that arrived since the last
    # such replay and then records how far it went; a selection is a one-off.
    tracked = args.since is None and args.stage is None
    with Reader(settings, replay_group(settings) if tracked else None) as reader:
        letters = reader.read(since)
        selected = select(letters, args.stage)
        again = args.include_replayed
        plan = plan_replay(letters, selected, settings.topic_raw, include_replayed=again)
        sent = publish(settings, plan.send) if plan.send else 0
        if tracked:
            reader.commit()
    scope = "new since the last replay" if tracked else "selected"
    print(
        f"decryptscope dlq: replayed {sent} of {len(selected)} dead letters ({scope}) to "
        f"{settings.topic_raw}; not sent: {plan.already_back} failed again after an earlier "
        f"replay, {plan.results_of_replay} are failed replays (--include-replayed sends the "
        f"newest of each), {plan.not_raw} did not come from {settings.topic_raw}",
        file=sys.stderr,
    )
    return 0
