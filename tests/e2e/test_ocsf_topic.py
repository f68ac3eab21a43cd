"""The worker's OCSF topic on the real stack: with ``ocsf_enabled``, every DECRYPTION and
TRAFFIC event of the demo traffic reaches ``topic_events_ocsf`` as an OCSF 1.8.0 Network
Activity event that the official schema accepts, keyed like ``panos.events``."""

from __future__ import annotations

import csv

import orjson
import pytest
from kafka import KafkaConsumer

from pipeline.commands import replay
from pipeline.commands.setup import setup
from tests.harness import Services, isolated_settings, sample_lines
from tests.ocsf_schema import schema_errors

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def session_events(lines: list[bytes]) -> set[tuple[str, str, str]]:
    """(serial, log type, sequence number) of the sample's DECRYPTION and TRAFFIC lines, read
    from their CSV columns (sequence number: column 89 of DECRYPTION, 39 of TRAFFIC)."""
    out = set()
    for line in lines:
        text = line.decode()
        start = text.find(",")
        while start > 0 and text[start - 1].isdigit():
            start -= 1
        row = next(csv.reader([text[start:]]))
        column = {"DECRYPTION": 89, "TRAFFIC": 39}.get(row[3])
        if column is not None:
            out.add((row[2], row[3], row[column]))
    return out


def test_the_worker_publishes_valid_ocsf_events(settings, run_prefix, tmp_path) -> None:
    tag = f"{run_prefix}-ocsf"
    s = isolated_settings(
        settings,
        tag,
        tmp_path / "worker",
        ocsf_enabled=True,
        topic_events_ocsf=f"{tag}.events.ocsf",
        batch_max_wait_s=0.3,
        worker_index=False,
    )
    assert setup(s) == 0
    good, bad = sample_lines()
    wanted = session_events(good)
    assert len(wanted) > 40
    with Services(s, tmp_path / "logs").start():
        target = replay.Target("tcp", "127.0.0.1", s.syslog_tcp_port)
        assert replay.replay(replay.prepare(good + bad, now=False), target) == len(good + bad)
        consumer = KafkaConsumer(
            s.topic_events_ocsf,
            bootstrap_servers=s.kafka_bootstrap,
            auto_offset_reset="earliest",
            consumer_timeout_ms=30_000,
        )
        seen: dict[tuple[str, str, str], dict] = {}
        keys = set()
        try:
            for message in consumer:
                event = orjson.loads(message.value)
                meta = event["metadata"]
                seen[(meta["product"]["uid"], meta["log_name"], str(meta["sequence"]))] = event
                keys.add(message.key)
                if set(seen) >= wanted:
                    break
        finally:
            consumer.close()
    assert set(seen) == wanted
    for event in seen.values():
        assert schema_errors(event) == []
        assert event["type_uid"] == event["class_uid"] * 100 + event["activity_id"]
    assert all(b":" in key for key in keys)  # serial:sessionid, as panos.events
