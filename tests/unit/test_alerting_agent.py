"""The spike agent in Faust's test context: failures in, an alert out, the baseline saved."""

from __future__ import annotations

from unittest import mock

import faust
from prometheus_client import CollectorRegistry

from pipeline.metrics import build_metrics
from pipeline.settings import load_settings
from pipeline.stream import spikes

CAUSE = "server-cert-expired"


def failure(server: str = "a.example") -> dict:
    return {
        "decryptscope": {"failure": True, "cause": CAUSE, "remediation": "renew it"},
        "tls": {"client": {"server_name": server}},
        "rule": {"name": "decrypt-all"},
        "source": {"ip": "192.0.2.1"},
    }


async def test_a_spike_in_the_stream_becomes_an_alert():
    settings = load_settings(
        env={
            "DECRYPTSCOPE_ALERT_WINDOW_S": "10",
            "DECRYPTSCOPE_ALERT_BASELINE_WINDOWS": "2",
            "DECRYPTSCOPE_ALERTS_INDEX": "",
        }
    )
    # No broker behind this address: the test context needs none.
    app = faust.App("test-spikes", broker="kafka://127.0.0.1:1", store="memory://")
    events = app.topic("test-events", value_serializer="json")
    alerts = app.topic("test-alerts", value_serializer="json")
    metrics = build_metrics(CollectorRegistry())
    clock = [0.0]
    sent = mock.AsyncMock()
    with (
        mock.patch.object(spikes.time, "time", lambda: clock[0]),
        mock.patch.object(alerts, "send", sent),
    ):
        agent = spikes.register(app, settings, events, alerts, metrics=metrics)
        table = app.tables["spike-baselines"]
        with mock.patch.object(table, "_send_changelog"):
            async with agent.test_context() as stream:
                # Three quiet windows of 3 failures, one of 100, then one more event.
                for window, count in ((0, 3), (1, 3), (2, 3), (3, 100)):
                    for i in range(count):
                        clock[0] = window * 10 + 1 + i * 0.05
                        await stream.put(failure())
                    assert sent.await_count == 0
                await stream.put({"event": {"kind": "event"}})  # not a failure: ignored
                assert sent.await_count == 0
                clock[0] = 41.0
                await stream.put(failure())

    kinds = [call.kwargs["value"]["kind"] for call in sent.await_args_list]
    assert kinds == ["spike", "spike"]  # the cause, and the cause on its one server
    alert = sent.await_args_list[0].kwargs["value"]
    assert alert["cause"] == CAUSE
    assert alert["observed"] == 100
    assert alert["remediation"] == "renew it"
    assert sent.await_args_list[0].kwargs["key"] == alert["id"].encode()
    assert table[CAUSE]["last"] == 3  # the baseline was saved after the window closed
    counted = metrics.registry.get_sample_value(
        "decryptscope_alerts_total", {"kind": "spike", "cause": CAUSE}
    )
    assert counted == 2
