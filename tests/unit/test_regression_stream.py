"""Regression alerts in the stream: window counts with failures per firewall and the change
notices every worker sends go through the Kafka contract (pipeline.wire) to the detector
(pipeline.alerting), which names the change; the worker's side (pipeline.stream.changes) counts
TLS sessions, change points and certificates with bounded labels; the spike agent in Faust's
test context raises the alert and records it for Prometheus."""

from __future__ import annotations

from datetime import UTC, datetime
from unittest import mock

import faust
import orjson
import pytest
from prometheus_client import CollectorRegistry

from pipeline import changes, wire
from pipeline.alerting import AlertConfig, SpikeDetector
from pipeline.chain import Chain, ChainConfig, Message
from pipeline.diagnosis import load_catalogue
from pipeline.metrics import build_metrics
from pipeline.regression import Criteria
from pipeline.settings import Settings, load_settings
from pipeline.stream import spikes
from pipeline.stream.changes import ChangeRelay

CAUSE = "inbound-proxy-handshake-failure"
FW, OTHER = "012801096530", "012801096531"
WINDOW = 10


def failure(firewall: str = FW, n: int = 0) -> wire.Failure:
    return wire.Failure(
        CAUSE, "198.51.100.80", "inbound-portal", "203.0.113.51", f"e{n}", "inbound-inspection",
        "inbound-inspection", "check ciphers", firewall,
    )  # fmt: skip


def counts(window: int, per_firewall: dict[str, int]) -> wire.WindowCount:
    count = wire.WindowCount(CAUSE, window, WINDOW)
    for firewall, n in per_firewall.items():
        for i in range(n):
            count.add(failure(firewall, i))
    return count


def notice(
    firewall: str, seen: float, kind: str = "software", cid: str = "c1"
) -> wire.ChangeNotice:
    return wire.ChangeNotice(cid, kind, firewall, "fw-dmz-01", seen, "2026-11-20T09:30:00+00:00",
                             "PAN-OS 10.1 to 10.2")  # fmt: skip


def detector(**criteria) -> SpikeDetector:
    crit = Criteria(before_s=60, after_s=60, factor=2.0, min_failures=5, **criteria)
    return SpikeDetector(AlertConfig(window_s=WINDOW, regression=crit))


def run(det: SpikeDetector, per_window: dict[int, dict[str, int]], start: int = 0) -> list[dict]:
    """Feed counts window by window (from ``start``), closing each; the alerts raised."""
    alerts = []
    det.tick(start * WINDOW)  # the detector watches from this window on
    for window in range(start, max(per_window) + 1):
        if window in per_window:
            det.add(counts(window, per_window[window]))
        alerts += det.tick((window + 1) * WINDOW)
    return [a for a in alerts if a["kind"] == "regression"]


# --- wire ----------------------------------------------------------------------------------


def test_change_notices_and_window_counts_share_the_topic_and_stay_apart() -> None:
    sent = notice(FW, 95.0)
    value = wire.encode_change_notice(sent)
    assert wire.decode_counts_message(value) == sent
    with pytest.raises(ValueError):
        wire.decode_window_count(value)
    count = counts(3, {FW: 2, OTHER: 1})
    again = wire.decode_counts_message(wire.encode_window_count(count))
    assert isinstance(again, wire.WindowCount) and again.firewalls == {FW: 2, OTHER: 1}
    other = counts(3, {FW: 1})
    count.merge(other)
    assert count.firewalls == {FW: 3, OTHER: 1}
    with pytest.raises(ValueError):
        wire.decode_counts_message(orjson.dumps({"change": {"kind": "x"}}))


# --- the detector ----------------------------------------------------------------------------


def test_a_cause_appearing_on_a_firewall_after_its_change_raises_one_regression() -> None:
    det = detector()
    det.add_change(notice(FW, 10 * WINDOW + 3))
    alerts = run(det, {4: {OTHER: 1}, 10: {FW: 3}, 11: {FW: 3, OTHER: 6}, 12: {FW: 4}}, start=2)
    [alert] = alerts  # at window 11: 6 failures since the change, none before; once only
    assert alert["cause"] == CAUSE and alert["firewall"] == FW
    assert alert["verdict"] == "appeared"
    assert alert["before"] == {"failures": 0, "windows": 6}
    assert alert["after"] == {"failures": 6, "windows": 2}
    assert alert["change"]["kind"] == "software" and alert["change"]["id"] == "c1"
    assert "PAN-OS 10.1 to 10.2" in alert["message"] and "fw-dmz-01" in alert["message"]
    assert alert["id"] == f"regression:{CAUSE}:{FW}:c1"
    assert alert["severity"] == "critical"
    assert alert["@timestamp"] == datetime.fromtimestamp(12 * WINDOW, UTC).isoformat()


def test_growth_against_the_rate_before_the_change() -> None:
    # before: 1 failure per window for 6 windows; after: 2 per window = 2 times
    before = {w: {FW: 1} for w in range(4, 10)}
    det = detector()
    det.add_change(notice(FW, 10 * WINDOW))
    [alert] = run(det, {**before, 10: {FW: 2}, 11: {FW: 2}, 12: {FW: 2}}, start=4)
    assert alert["verdict"] == "grew" and alert["after"] == {"failures": 6, "windows": 3}
    det = detector()
    det.add_change(notice(FW, 10 * WINDOW))
    assert run(det, {**before, 10: {FW: 1}, 11: {FW: 2}, 12: {FW: 2}, 13: {FW: 1}}, start=4) == []


def test_only_the_firewall_that_changed_and_only_after_a_watched_window() -> None:
    det = detector()
    det.add_change(notice(FW, 10 * WINDOW))
    assert run(det, {10: {OTHER: 4}, 11: {OTHER: 4}}, start=5) == []  # another firewall
    # a change in the detector's first window: nothing watched before it
    det = detector()
    det.add_change(notice(FW, 10 * WINDOW))
    assert run(det, {10: {FW: 4}, 11: {FW: 4}}, start=10) == []
    # failures longer after the change than change_after_s are not its doing
    det = detector()
    det.add_change(notice(FW, 10 * WINDOW))
    assert run(det, {17: {FW: 4}, 18: {FW: 4}}, start=5) == []


def test_a_change_declared_for_every_firewall_counts_for_each() -> None:
    det = detector()
    [declared] = changes.declared(["1970-01-01T00:01:40+00:00"])  # second 100 = window 10
    det.add_change(wire.change_notice(declared, declared.time.timestamp()))
    [alert] = run(det, {10: {OTHER: 3}, 11: {OTHER: 3}}, start=5)
    assert alert["firewall"] == OTHER and alert["change"]["kind"] == "declared"


def test_the_history_survives_a_baseline_export() -> None:
    det = detector()
    det.add_change(notice(FW, 10 * WINDOW))
    run(det, {10: {FW: 2}}, start=5)
    saved = orjson.loads(orjson.dumps(det.export(CAUSE)))
    again = SpikeDetector(det.config, load={CAUSE: saved}.get)
    again.add_change(notice(FW, 10 * WINDOW))
    again.tick(5 * WINDOW)
    again.add(counts(11, {FW: 4}))
    [alert] = [a for a in again.tick(12 * WINDOW) if a["kind"] == "regression"]
    assert alert["after"]["failures"] == 6


# --- the worker's side -------------------------------------------------------------------------


class Topic:
    def __init__(self) -> None:
        self.sent: list[dict] = []

    def send_soon(self, **kwargs) -> None:
        self.sent.append(kwargs)


def system_line(
    seqno: int, desc: str, eventid: str = "cert-expiry", subtype: str = "crypto"
) -> str:
    return (
        f"<14>Nov 25 12:00:00 fw-dmz-01 1,2026/11/25 12:00:00,{FW},SYSTEM,{subtype},2562,"
        f"2026/11/25 12:00:00,,{eventid},,0,0,general,critical,{desc},{seqno},0x0,0,0,0,0,,"
        "fw-dmz-01,0,0,2026-11-25T12:00:00.000+00:00"
    )


def test_the_relay_counts_with_bounded_labels_and_raises_the_certificate_alert() -> None:
    metrics = build_metrics(CollectorRegistry())
    relay = ChangeRelay(Settings(metric_firewalls=("fw-dmz-01",), topic_partitions=3), metrics)
    # System Log Reference, crypto/cert-expiry (critical)
    line = system_line(1, "Certificate portal-inbound and corresponding key in vsys 1 have expired")
    result = Chain(ChainConfig(event_time=True)).run([Message(line)], {}, 0.0, relay.versions)
    alerts = relay.observe(result, 1000.0)
    [alert] = alerts
    assert alert["kind"] == "certificate_expired" and alert["severity"] == "critical"
    assert alert["firewall"] == FW and "portal-inbound" in alert["message"]
    assert alert["remediation"]
    value = metrics.registry.get_sample_value
    # the firewall is named by its device name in metric_firewalls
    labels = {"kind": "certificate-expired", "firewall": "fw-dmz-01"}
    assert value("decryptscope_change_points_total", labels) == 1
    # primed at zero for "other" and every kind
    assert value("decryptscope_change_points_total", {"kind": "commit", "firewall": "other"}) == 0
    topic = Topic()
    relay.send(topic, result, 1000.0)
    assert sorted(m["partition"] for m in topic.sent) == [0, 1, 2]
    sent = wire.decode_counts_message(topic.sent[0]["value"])
    assert isinstance(sent, wire.ChangeNotice) and sent.seen == 1000.0
    relay.refresh_certificates(1001.0)
    expired = {"role": "firewall", "days_left": "expired"}
    assert value("decryptscope_certificates", expired) == 1
    assert (
        value("decryptscope_certificates", {"role": "inbound-inspection", "days_left": "0-7"}) == 0
    )


def test_the_relay_counts_tls_sessions_of_unnamed_firewalls_as_other() -> None:
    metrics = build_metrics(CollectorRegistry())
    relay = ChangeRelay(Settings(), metrics)
    result = Chain(ChainConfig(event_time=True)).run([], {}, 0.0)
    result.counts.tls_sessions[("TRAFFIC", "unknown", True, "012801096514")] += 3
    relay.observe(result, 0.0)
    labels = {"log_type": "TRAFFIC", "mode": "unknown", "decrypted": "yes", "firewall": "other"}
    assert metrics.registry.get_sample_value("decryptscope_tls_sessions_total", labels) == 3


# --- the spike agent ---------------------------------------------------------------------------


async def test_the_agent_turns_a_notice_and_counts_into_a_regression_alert() -> None:
    settings = load_settings(
        env={
            "DECRYPTSCOPE_ALERT_WINDOW_S": str(WINDOW),
            "DECRYPTSCOPE_ALERT_GRACE_S": "0",
            "DECRYPTSCOPE_CHANGE_BEFORE_S": "60",
            "DECRYPTSCOPE_CHANGE_AFTER_S": "60",
            "DECRYPTSCOPE_METRIC_FIREWALLS": FW,
        }
    )
    app = faust.App("test-regression", broker="kafka://127.0.0.1:1", store="memory://")
    app.decryptscope = {}
    topic = app.topic("test-counts", key_type=bytes, value_type=bytes, value_serializer="raw")
    alerts_topic = app.topic(
        "test-alerts", key_type=bytes, value_type=bytes, value_serializer="raw"
    )
    metrics = build_metrics(CollectorRegistry(), causes=load_catalogue().labels())
    clock = [50.0]
    sent = mock.AsyncMock()
    with (
        mock.patch.object(spikes.time, "time", lambda: clock[0]),
        mock.patch.object(alerts_topic, "send", sent),
    ):
        agent, close_windows = spikes.register(app, settings, topic, alerts_topic, metrics=metrics)
        table = app.tables[spikes.BASELINES_TABLE]
        table.send_changelog = lambda *_a, **_k: None
        async with agent.test_context() as stream:
            await close_windows()  # watching from window 5
            await stream.put(wire.encode_change_notice(notice(FW, 100.0)), key=b"change")
            for window in (10, 11):
                await stream.put(wire.encode_window_count(counts(window, {FW: 3})), key=b"c")
                clock[0] = (window + 1) * WINDOW
                await close_windows()
    [alert] = [
        a for a in (orjson.loads(c.kwargs["value"]) for c in sent.await_args_list)
        if a["kind"] == "regression"
    ]  # fmt: skip
    assert alert["change"]["summary"] == "PAN-OS 10.1 to 10.2"
    labels = {"cause": CAUSE, "change_kind": "software", "firewall": FW}
    stamp = metrics.registry.get_sample_value(
        "decryptscope_regression_last_timestamp_seconds", labels
    )
    assert stamp == 120.0


def test_of_two_changes_at_one_moment_the_upgrade_is_named() -> None:
    # an upgrade's first 10.2 line also reloads the decryption daemon's configuration
    det = detector()
    det.add_change(notice(FW, 10 * WINDOW + 1, kind="commit", cid="reload"))
    det.add_change(notice(FW, 10 * WINDOW + 1, kind="software", cid="upgrade"))
    [alert] = run(det, {10: {FW: 3}, 11: {FW: 3}}, start=5)
    assert alert["change"]["id"] == "upgrade"
