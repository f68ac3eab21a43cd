"""The spike detector as a Faust agent on the events topic.

Failures are re-keyed by cause (one repartition topic), so each cause is counted by exactly one
worker however many run; its baseline lives in a changelogged table. Alerts go to the alerts
topic and into the alerts index. The statistics are in ``pipeline.alerting``.
"""

from __future__ import annotations

import time
from typing import Any

from pipeline.alerting import AlertConfig, SpikeDetector, failure_from_event
from pipeline.metrics import METRICS, Metrics, observe_alert


def _cause_of(event: Any) -> str:
    """The failure cause of a decoded event, "" for anything else (not a failure, not JSON)."""
    ds = event.get("decryptscope") if isinstance(event, dict) else None
    if isinstance(ds, dict) and ds.get("failure") and isinstance(ds.get("cause"), str):
        return ds["cause"]
    return ""


def register(
    app: Any, settings: Any, events_topic: Any, alerts_topic: Any, *, metrics: Metrics = METRICS
) -> Any:
    """Add the spike agent, its baseline table and window timer to ``app``; returns the agent."""
    baselines = app.Table("spike-baselines", partitions=settings.topic_partitions)
    detector = SpikeDetector(AlertConfig.from_settings(settings), load=baselines.get)
    writer: list[Any] = []

    async def emit(alerts: list[dict[str, Any]]) -> None:
        for alert in alerts:
            observe_alert(metrics, alert["kind"], alert["cause"])
            await alerts_topic.send(key=alert["id"].encode(), value=alert)
        if alerts and settings.alerts_index:
            if not writer:
                from pipeline.sinks.elasticsearch import BulkWriter, make_client

                writer.append(
                    BulkWriter(make_client(settings), settings, index_prefix=settings.alerts_index)
                )
            await writer[0].write([(alert["id"], alert) for alert in alerts])

    # The repartition topic is named after the agent: with the app id in it, two deployments
    # reading one events topic do not share it.
    @app.agent(events_topic, name=f"{app.conf.id}-spikes")
    async def detect_spikes(stream: Any) -> None:
        async for event in stream.filter(_cause_of).group_by(_cause_of, name="spikes-by-cause"):
            failure = failure_from_event(event) if _cause_of(event) else None
            if failure is None:
                continue
            await emit(detector.observe(failure, time.time()))
            # Tables change only inside a stream: save this cause's baseline when it moved.
            if failure.cause in detector.pending():
                baselines[failure.cause] = detector.export(failure.cause)

    @app.timer(interval=max(1.0, settings.alert_window_s / 4))
    async def close_windows() -> None:
        # Alerts for a window come out even when no failure follows it.
        await emit(detector.tick(time.time()))

    return detect_spikes
