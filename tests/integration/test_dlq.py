"""``decryptscope dlq show|replay`` on the real stack, with dead letters made by the real worker.

The fix is simulated honestly with a setting: the worker first runs with an unknown time zone
for a firewall (``device_timezones``), so every line of it that needs one is dead-lettered
(stage ``config``): Elastic's public PAN-OS 8.x TRAFFIC sample, whose lines carry no UTC offset
of their own. The demo traffic's two lines that are not PAN-OS logs are dead-lettered too (they
stay bad). After the worker restarts with the setting corrected, ``dlq replay`` gets every PAN-OS
line indexed; the two bad lines come back to the dead-letter topic once, marked as replays,
and a second replay sends nothing: the dead-letter topic does not grow."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from kafka import KafkaConsumer, TopicPartition

from pipeline.commands import dlq, replay
from pipeline.commands.setup import setup
from pipeline.resources import ROOT
from tests.harness import Services, expected_ids, isolated_settings, sample_lines, settings_env

pytestmark = pytest.mark.integration

SERIAL = "012801096514"
# PAN-OS 8.x TRAFFIC logs of firewall SERIAL, no High Resolution Timestamp (no offset)
PANOS_8 = ROOT / "tests" / "golden" / "sample-elastic-traffic-8.1.log"


def run_dlq(s, *args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", "pipeline", "dlq", *args],
        env=settings_env(s),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done


def wait_letters(s, count: int, timeout: float = 90.0) -> list[dlq.Letter]:
    deadline = time.monotonic() + timeout
    letters: list[dlq.Letter] = []
    while time.monotonic() < deadline:
        letters = dlq.read_letters(s, None)
        if len(letters) >= count:
            return letters
        time.sleep(1.0)
    return letters


def indexed_ids(es_client, s) -> set[str]:
    from elasticsearch import helpers

    if not es_client.indices.exists(index=s.index_prefix):
        return set()  # nothing indexed yet: the alias comes with the first daily index
    es_client.indices.refresh(index=s.index_prefix)
    return {h["_id"] for h in helpers.scan(es_client, index=s.index_prefix, _source=False)}


def raw_messages(s) -> list:
    consumer = KafkaConsumer(
        s.topic_raw,
        bootstrap_servers=s.kafka_bootstrap,
        auto_offset_reset="earliest",
        consumer_timeout_ms=5000,
    )
    try:
        return list(consumer)
    finally:
        consumer.close()


def wait_consumed(s, timeout: float = 90.0) -> None:
    """Until the worker group has committed the end of the raw topic."""
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=s.kafka_bootstrap)
    consumer = KafkaConsumer(bootstrap_servers=s.kafka_bootstrap)
    try:
        tps = [TopicPartition(s.topic_raw, p) for p in consumer.partitions_for_topic(s.topic_raw)]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ends = consumer.end_offsets(tps)
            done = admin.list_group_offsets(s.worker_id).get(s.worker_id, {})
            if all(tp in done and done[tp].offset >= ends[tp] for tp in tps):
                return
            time.sleep(0.5)
        raise AssertionError("the worker did not consume the raw topic to its end")
    finally:
        consumer.close()
        admin.close()


@pytest.fixture
def broken(settings, run_prefix, tmp_path):
    """A pipeline whose worker has an unknown time zone for the demo firewall."""
    s = isolated_settings(
        settings,
        f"{run_prefix}-dlq",
        tmp_path / "worker",
        device_timezones=(f"{SERIAL}=Mars/Olympus_Mons",),
        batch_max_wait_s=0.3,
    )
    assert setup(s) == 0
    return s


def test_dead_letters_are_shown_filtered_and_replayed_once_after_a_fix(
    broken, es_client, tmp_path
) -> None:
    pan_os = replay.read_lines([PANOS_8])
    not_pan_os = sample_lines()[1]
    lines = pan_os + not_pan_os
    good = expected_ids(pan_os)  # the documents the lines make with a correct setting
    assert len(pan_os) == 6 and len(not_pan_os) == 2 and len(good) == len(pan_os)
    services = Services(broken, tmp_path / "broken").start()
    try:
        target = replay.Target("tcp", "127.0.0.1", broken.syslog_tcp_port)
        assert replay.replay(lines, target) == len(lines)
        letters = wait_letters(broken, len(lines))
        assert len(letters) == len(lines)
        services.check_alive()
    finally:
        services.stop()
    assert indexed_ids(es_client, broken) == set()

    # --- show ------------------------------------------------------------------------------
    shown = run_dlq(broken, "show").stdout.splitlines()
    assert len(shown) == len(lines)
    config = run_dlq(broken, "show", "--stage", "config").stdout.splitlines()
    parse = run_dlq(broken, "show", "--stage", "parse").stdout.splitlines()
    assert len(config) + len(parse) == len(lines)
    assert len(config) == len(pan_os)  # every line of the firewall
    assert all("  config  config  " in x and "Mars/Olympus_Mons" in x for x in config)
    assert any("this is not a PAN-OS log line" in x for x in parse)
    as_json = [orjson.loads(x) for x in run_dlq(broken, "show", "--json").stdout.splitlines()]
    assert sorted(x["original"].encode() for x in as_json) == sorted(lines)
    assert all(x["topic"] == broken.topic_raw and "dlq_position" in x for x in as_json)
    assert len(run_dlq(broken, "show", "--since", "1h").stdout.splitlines()) == len(lines)
    future = (datetime.now(UTC) + timedelta(minutes=5)).isoformat()
    assert run_dlq(broken, "show", "--since", future).stdout == ""

    # --- the fix, then replay --------------------------------------------------------------
    fixed = dataclasses.replace(broken, device_timezones=())
    services = Services(fixed, tmp_path / "fixed").start(ingest=False)
    try:
        done = run_dlq(fixed, "replay")
        assert f"replayed {len(lines)} of {len(lines)}" in done.stderr
        deadline = time.monotonic() + 120
        while indexed_ids(es_client, fixed) != good and time.monotonic() < deadline:
            services.check_alive()
            time.sleep(1.0)
        assert indexed_ids(es_client, fixed) == good
        # the two lines that are still bad come back once, marked as replays
        letters = wait_letters(fixed, len(lines) + 2)
        back = [x for x in letters if x.body.get("replay_of")]
        assert len(letters) == len(lines) + 2 and len(back) == 2
        firsts = {x.position: x for x in letters if not x.body.get("replay_of")}
        for x in back:
            assert x.body["original"] == firsts[x.body["replay_of"]].body["original"]
            assert x.body["stage"] == "parse"
        # what went to the raw topic: the original bytes, keyed by serial, marked
        raw = raw_messages(fixed)
        replays = [m for m in raw if dict(m.headers).get("dlq_replay")]
        assert sorted(m.value for m in replays) == sorted(lines)
        keys = {m.value: m.key for m in raw if not dict(m.headers).get("dlq_replay")}
        assert all(m.key == keys[m.value] for m in replays)  # as the ingest keyed them
        assert all(m.key == SERIAL.encode() for m in replays if SERIAL.encode() in m.value)
        for m in replays:
            marker = dict(m.headers)["dlq_replay"].decode()
            assert firsts[marker].body["original"].encode() == m.value

        # --- replaying again sends nothing: the topics do not grow ------------------------
        again = run_dlq(fixed, "replay")
        assert "replayed 0 of 2 dead letters (new since the last replay)" in again.stderr
        assert "2 are failed replays" in again.stderr
        assert run_dlq(fixed, "replay").stderr.startswith("decryptscope dlq: replayed 0 of 0")
        wait_consumed(fixed)
        assert len(dlq.read_letters(fixed, None)) == len(lines) + 2

        # --- a window replays what did not fail again, not the failed ones ---------------
        window = run_dlq(fixed, "replay", "--since", "1h")
        assert f"replayed {len(good)} of {len(lines) + 2}" in window.stderr
        assert "2 failed again after an earlier replay, 2 are failed replays" in window.stderr
        wait_consumed(fixed)
        assert len(dlq.read_letters(fixed, None)) == len(lines) + 2
        assert indexed_ids(es_client, fixed) == good  # sent again, indexed once

        # --- unless asked: the newest failure of each chain once more ---------------------
        forced = run_dlq(fixed, "replay", "--stage", "parse", "--include-replayed")
        assert "replayed 2 of" in forced.stderr
        letters = wait_letters(fixed, len(lines) + 4)
        assert len(letters) == len(lines) + 4
        roots = [x.body["replay_of"] for x in letters if x.body.get("replay_of")]
        assert len(set(roots)) == 2 and len(roots) == 4
        assert indexed_ids(es_client, fixed) == good
        services.check_alive()
    finally:
        services.stop()
