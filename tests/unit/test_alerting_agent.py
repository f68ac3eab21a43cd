"""The spike agent in Faust's test context: window counts of several workers in, one alert out,
the baseline saved with the partition of its cause."""

from __future__ import annotations

from unittest import mock

import faust
import orjson
from prometheus_client import CollectorRegistry

from pipeline import wire
from pipeline.diagnosis import load_catalogue
from pipeline.metrics import build_metrics
from pipeline.settings import load_settings
from pipeline.stream import spikes

CAUSE = "server-cert-expired"


def count(window: int, n: int, worker: str) -> bytes:
    part = wire.WindowCount(CAUSE, window, 10)
    for i in range(n):
        part.add(
            wire.Failure(
                CAUSE, "a.example", "decrypt-all", "192.0.2.1", f"{worker}-{i}", remediation="renew"
            )
        )
    return wire.encode_window_count(part)


async def test_counts_of_two_workers_become_one_alert():
    settings = load_settings(
        env={
            "DECRYPTSCOPE_ALERT_WINDOW_S": "10",
            "DECRYPTSCOPE_ALERT_BASELINE_WINDOWS": "2",
            "DECRYPTSCOPE_ALERT_GRACE_S": "2",
        }
    )
    # No broker behind this address: the test context needs none.
    app = faust.App("test-spikes", broker="kafka://127.0.0.1:1", store="memory://")
    app.decryptscope = {}
    counts = app.topic("test-counts", key_type=bytes, value_type=bytes, value_serializer="raw")
    alerts = app.topic("test-alerts", key_type=bytes, value_type=bytes, value_serializer="raw")
    metrics = build_metrics(CollectorRegistry(), causes=load_catalogue().labels())
    clock = [0.0]
    sent = mock.AsyncMock()
    indexed: list[dict] = []

    async def index_alerts(batch):
        indexed.extend(batch)

    with (
        mock.patch.object(spikes.time, "time", lambda: clock[0]),
        mock.patch.object(alerts, "send", sent),
    ):
        agent, close_windows = spikes.register(
            app, settings, counts, alerts, index_alerts=index_alerts, metrics=metrics
        )
        table = app.tables[spikes.BASELINES_TABLE]
        written: list[tuple] = []
        table.send_changelog = lambda p, k, v, **_: written.append((p, k, v))
        async with agent.test_context() as stream:
            # Three quiet windows of 3 failures (two workers), one of 100.
            for window, n in ((0, 3), (1, 3), (2, 3), (3, 100)):
                await stream.put(count(window, n - n // 2, "w1"), key=CAUSE.encode())
                await stream.put(count(window, n // 2, "w2"), key=CAUSE.encode())
                clock[0] = window * 10 + 10 + 2.0  # the window's end plus the grace
                await close_windows()
            await stream.put(b"not a window count", key=b"x")  # ignored
    alerts_sent = [orjson.loads(call.kwargs["value"]) for call in sent.await_args_list]
    assert [a["kind"] for a in alerts_sent] == ["spike", "spike"]  # cause; cause on its server
    alert = alerts_sent[0]
    assert alert["cause"] == CAUSE
    assert alert["observed"] == 100
    assert alert["remediation"] == "renew"
    assert sent.await_args_list[0].kwargs["key"] == alert["id"].encode()
    assert indexed == alerts_sent
    # the baseline was saved after each window, on the partition its counts came from
    assert written and all(p == 0 and k == CAUSE for p, k, _ in written)
    assert written[-1][2]["last"] == 3
    counted = metrics.registry.get_sample_value(
        "decryptscope_alerts_total", {"kind": "spike", "cause": CAUSE}
    )
    assert counted == 2
