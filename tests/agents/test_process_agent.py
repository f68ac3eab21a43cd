"""The process agent in Faust's test context: raw syslog -> ECS events or dead letters, and
the correlation table joining a session's TRAFFIC and DECRYPTION lines in either order."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import orjson
import pytest
from prometheus_client import CollectorRegistry

from pipeline.metrics import build_metrics
from pipeline.settings import Settings
from pipeline.stream.app import create_app

GOLDEN = Path(__file__).resolve().parent.parent / "golden" / "diagnosis"


def lines(case: str) -> list[bytes]:
    data = (GOLDEN / f"{case}.log").read_bytes().splitlines()
    return [x for x in data if x.strip() and not x.startswith(b"#")]


class NoClient:
    async def bulk(self, **_kwargs):
        raise AssertionError("the process agent does not index")


@pytest.fixture
def app_and_sent(tmp_path, request):
    settings = dataclasses.replace(
        Settings(),
        worker_id=f"test-process-{request.node.name[:30]}",
        worker_data_dir=str(tmp_path),
        kafka_bootstrap="127.0.0.1:1",
    )
    app = create_app(
        settings,
        metrics=build_metrics(CollectorRegistry()),
        with_metrics_endpoint=False,
        es_client=NoClient(),
    )
    parts = app.decryptscope
    sent: dict[str, list[dict]] = {"events": [], "dlq": []}

    def recorder(name):
        def send_soon(key=None, value=None, headers=None, **_kwargs):
            sent[name].append({"key": key, "value": orjson.loads(value), "headers": headers})

        return send_soon

    # the producer is not under test here
    parts["topics"].events.send_soon = recorder("events")
    parts["topics"].dlq.send_soon = recorder("dlq")
    return app, sent


async def put_all(app, values: list[bytes]) -> None:
    agent = app.agents["process"]
    async with agent.test_context() as a:
        for value in values:
            await a.put(value, key=b"012801096514")
        await asyncio.sleep(0)


async def test_a_failure_line_becomes_one_ecs_event(app_and_sent) -> None:
    app, sent = app_and_sent
    await put_all(app, lines("server-cert-expired"))
    assert not sent["dlq"]
    [event] = sent["events"]
    assert event["key"] == b"012801096514:1001"
    assert event["headers"]["doc_id"] == b"012801096514:DECRYPTION:7451000000000001001"
    doc = event["value"]
    assert doc["decryptscope"]["cause"] == "server-cert-expired"
    assert doc["decryptscope"]["failure"] is True
    assert doc["event"]["original"].startswith("<14>")


async def test_unparseable_lines_are_dead_lettered_with_a_reason(app_and_sent) -> None:
    app, sent = app_and_sent
    bad = [b"<14>Nov 20 10:15:03 fw hello world", b"\xff\xfe\x00garbage", b""]
    await put_all(app, [*bad, *lines("server-cert-expired")])
    assert len(sent["events"]) == 1
    assert len(sent["dlq"]) == 3
    for letter in sent["dlq"]:
        assert letter["value"]["stage"] == "parse"
        assert letter["value"]["error_type"]
        assert letter["value"]["message"]
        assert letter["value"]["offset"] is not None
    assert sent["dlq"][0]["value"]["original"] == bad[0].decode()
    assert "original_b64" in sent["dlq"][1]["value"]


@pytest.mark.parametrize("order", ["traffic-first", "decryption-first"])
async def test_traffic_and_decryption_of_a_session_are_correlated(app_and_sent, order) -> None:
    app, sent = app_and_sent
    traffic, decryption = lines("decrypt-error-joined")
    await put_all(app, [traffic, decryption] if order == "traffic-first" else [decryption, traffic])
    by_type: dict[str, dict] = {}
    for event in sent["events"]:
        by_type[event["headers"]["doc_id"].decode().split(":")[1]] = event["value"]
    assert set(by_type) == {"TRAFFIC", "DECRYPTION"}
    traffic_doc = by_type["TRAFFIC"]  # the last version sent of the TRAFFIC event
    assert traffic_doc["decryptscope"]["cause"] == "client-rejected-firewall-cert"
    correlation = traffic_doc["decryptscope"]["correlation"]
    assert correlation["key"] == "012801096514:1026"
    assert sorted(correlation["joined"]) == ["DECRYPTION", "TRAFFIC"]
    table = app.decryptscope["table"]
    assert table["012801096514:1026"]["key"] == "012801096514:1026"
