"""Spike detection in the stream: each worker counts its failures per alert window, the
detector adds the counts of every worker up.

* ``FailureWindows`` (in every worker): failures per (cause, window) of processing time; when
  a window has ended, one ``WindowCount`` per cause goes to the failure-counts topic, keyed by
  cause. No per-event message, no repartition of events.
* The ``spikes`` agent reads that topic: every count of a cause lands on one partition, so
  one worker adds up a cause's counts from all workers (``SpikeDetector.add``). A timer
  evaluates each window ``alert_grace_s`` after its end; baselines live in a changelogged
  table, written with the partition their cause's counts arrive on. Alerts go to the alerts
  topic and the alerts index. The statistics are in ``pipeline.alerting``.
* Change points: every worker sends the change notices it saw to every partition of the same
  topic (``pipeline.stream.changes``), and the declared changes of the settings are known from
  the start, so each cause's detector can tell when its failures on a firewall rose after a
  change of that firewall (``regression`` alerts, and the time of the last one per cause,
  change kind and firewall in ``decryptscope_regression_last_timestamp_seconds``).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from pipeline import changes, wire
from pipeline.alerting import AlertConfig, SpikeDetector
from pipeline.metrics import (
    METRICS,
    Metrics,
    cause_label,
    change_kind_label,
    firewall_label,
    observe_alert,
)
from pipeline.stream import tables

BASELINES_TABLE = "spike-baselines"


class FailureWindows:
    """One worker's failure counts per (cause, window) until each window ends."""

    def __init__(self, window_s: int) -> None:
        self.window_s = window_s
        self.open: dict[tuple[str, int], wire.WindowCount] = {}

    def add(self, failures: Iterable[wire.Failure], now: float) -> None:
        window_s = self.window_s
        window = int(now // window_s)
        open_ = self.open
        for failure in failures:
            slot = open_.get((failure.cause, window))
            if slot is None:
                slot = open_[(failure.cause, window)] = wire.WindowCount(
                    failure.cause, window, window_s
                )
            slot.add(failure)

    def due(self, now: float) -> list[wire.WindowCount]:
        """The counts of every window that has ended by ``now`` (removed from here)."""
        current = int(now // self.window_s)
        ended = [key for key in self.open if key[1] < current]
        return [self.open.pop(key) for key in ended]


def register(
    app: Any,
    settings: Any,
    counts_topic: Any,
    alerts_topic: Any,
    *,
    index_alerts: Callable[[list[dict[str, Any]]], Awaitable[Any]] | None = None,
    metrics: Metrics = METRICS,
) -> tuple[Any, Callable[[], Awaitable[None]]]:
    """Add the spike agent, its baseline table and its window timer to ``app``; returns the
    agent and the timer's coroutine function (what closes the windows)."""
    baselines = app.Table(BASELINES_TABLE, partitions=settings.topic_partitions)
    detector = SpikeDetector(
        AlertConfig.from_settings(settings),
        load=baselines.data.get,
        grace_s=settings.alert_grace_s,
    )
    partition_of: dict[str, int] = {}
    for declared in changes.declared(settings.declared_changes):
        detector.add_change(wire.change_notice(declared, declared.time.timestamp()))
    kinds = frozenset(changes.kinds())
    firewalls = frozenset(settings.metric_firewalls)

    async def emit(alerts: list[dict[str, Any]]) -> None:
        for alert in alerts:
            observe_alert(metrics, alert["kind"], alert["cause"])
            if alert["kind"] == "regression":
                change = alert["change"]
                metrics.regression_last.labels(
                    cause_label(metrics, alert["cause"]),
                    change_kind_label(change["kind"], kinds),
                    firewall_label(alert["firewall"], change.get("name"), firewalls),
                ).set(time.time())
            await alerts_topic.send(key=alert["id"].encode(), value=wire.encode_alert(alert))
        if alerts and index_alerts is not None:
            await index_alerts(alerts)

    @app.agent(counts_topic, name="spikes")
    async def detect_spikes(stream: Any) -> None:
        async for event in stream.events():
            try:
                message = wire.decode_counts_message(event.value)
            except ValueError:
                continue  # not ours: the topic is internal, nothing else should write it
            if isinstance(message, wire.ChangeNotice):
                detector.add_change(message)
                continue
            partition_of[message.cause] = event.message.partition
            detector.add(message)

    async def close_windows() -> None:
        # Alerts for a window come out even when no count follows it.
        await emit(detector.tick(time.time()))
        for cause in detector.pending():
            partition = partition_of.get(cause)
            baseline = detector.export(cause)
            if partition is not None and baseline is not None:
                tables.put(baselines, partition, cause, baseline)

    app.timer(interval=max(1.0, settings.alert_window_s / 4))(close_windows)
    app.decryptscope["detector"] = detector
    return detect_spikes, close_windows
