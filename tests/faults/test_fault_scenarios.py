"""Fault scenarios on a stack of their own (see conftest.py): each sends a known set of
uniquely numbered events over TCP, breaks something mid-stream, repairs it, and checks that
Elasticsearch holds exactly that set (nothing missing, nothing twice, nothing else) and that no
event was dead-lettered. ``bench/faults.py`` runs the same scenarios at volume."""

from __future__ import annotations

import pytest
import scenarios

pytestmark = [pytest.mark.faults, pytest.mark.e2e, pytest.mark.slow]

EVENTS = 6000
RATE = 1500.0


def check(result: scenarios.Result) -> None:
    out = result.outcome
    assert out.missing == 0, result
    assert out.unexpected == 0, result
    assert out.duplicated == 0, result
    assert out.indexed == out.sent, result
    assert out.dead_lettered == 0, result


def test_kafka_broker_killed_and_restarted(running_fault_stack, tmp_path) -> None:
    check(scenarios.kafka_broker_sigkill(running_fault_stack, tmp_path, EVENTS, RATE))


def test_elasticsearch_stopped_for_a_minute(running_fault_stack, tmp_path) -> None:
    result = scenarios.elasticsearch_stopped(running_fault_stack, tmp_path, EVENTS, RATE)
    check(result)
    assert result.notes["bulk_errors_while_down"] > 0  # the backoff shows in the metrics
    assert result.notes["max_group_lag"] > 0  # the lag builds up in Kafka
    assert result.notes["max_lag_metric"] > 0  # and shows in the worker's lag gauge
    before, peak = result.notes["worker_rss_mib"]
    assert peak < before + 512  # nothing piles up in the worker while it waits


def test_worker_killed_mid_batch_and_restarted(running_fault_stack, tmp_path) -> None:
    result = scenarios.worker_sigkill(running_fault_stack, tmp_path, EVENTS, RATE)
    check(result)
    assert result.notes["correlation_count_after_restart"] == 2


def test_ingest_sigterm_publishes_what_it_accepted(running_fault_stack, tmp_path) -> None:
    result = scenarios.ingest_sigterm(running_fault_stack, tmp_path, EVENTS, RATE)
    check(result)
    assert 0 < result.notes["accepted_before_stop"] < EVENTS
    assert result.notes["missing_of_accepted"] == 0


def test_ingest_sigkill_with_spool_loses_nothing_it_accepted(running_fault_stack, tmp_path) -> None:
    result = scenarios.ingest_sigkill_with_spool(running_fault_stack, tmp_path, EVENTS, RATE)
    check(result)
    assert result.notes["spooled_at_kill"] > 0  # the kill did catch messages only on disk


def test_one_of_two_workers_killed_the_other_takes_over(running_fault_stack, tmp_path) -> None:
    result = scenarios.worker_of_two_sigkill(running_fault_stack, tmp_path, EVENTS, RATE)
    check(result)
    # the group notices the death after the session timeout, then rebalances: the survivor
    # holds every partition well before a second session timeout has passed
    assert result.notes["takeover_s"] < 2 * result.notes["session_timeout_s"], result
