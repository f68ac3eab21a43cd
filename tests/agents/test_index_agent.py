"""The index agent in Faust's test context: batches, dead letters, and no ack before indexing.

The Elasticsearch client here is a recording stand-in (this tests the agent's acking, not
Elasticsearch; the sink's behaviour against the real cluster is in tests/integration)."""

from __future__ import annotations

import asyncio
import dataclasses

import faust
import orjson
import pytest
from prometheus_client import CollectorRegistry

from pipeline.metrics import build_metrics
from pipeline.settings import Settings
from pipeline.sinks.elasticsearch import BulkWriter
from pipeline.stream import index
from pipeline.stream.topics import declare


class RecordingClient:
    """Answers bulk requests like Elasticsearch would, once ``release`` is set."""

    def __init__(self, refuse: frozenset[str] = frozenset()) -> None:
        self.release = asyncio.Event()
        self.requests: list[list[dict]] = []
        self.refuse = refuse

    async def bulk(self, operations: bytes, refresh: bool = False) -> dict:
        await self.release.wait()
        lines = [orjson.loads(x) for x in operations.split(b"\n") if x]
        ops = lines[0::2]
        self.requests.append(lines)
        items = []
        for op in ops:
            doc_id = op["index"]["_id"]
            if doc_id in self.refuse:
                error = {"type": "strict_dynamic_mapping_exception", "reason": "no"}
                items.append({"index": {"_id": doc_id, "status": 400, "error": error}})
            else:
                items.append({"index": {"_id": doc_id, "status": 201, "result": "created"}})
        return {"errors": bool(self.refuse & {o["index"]["_id"] for o in ops}), "items": items}


def make_app(client: RecordingClient, bulk_size: int = 3, in_flight: index.InFlight | None = None):
    settings = dataclasses.replace(Settings(), bulk_size=bulk_size, bulk_max_latency_s=0.2)
    app = faust.App(f"test-index-{id(client)}", broker="kafka://127.0.0.1:1", store="memory://")
    topics = declare(app, settings)
    writer = BulkWriter(client, settings, metrics=build_metrics(CollectorRegistry()))
    sent: list[tuple[bytes, bytes]] = []

    async def fake_send(key=None, value=None, **kwargs):
        sent.append((key, value))

    topics.dlq.send = fake_send  # the producer is not under test here
    agent = index.register(
        app, settings, topics, writer, build_metrics(CollectorRegistry()), in_flight=in_flight
    )
    return agent, sent


def ecs(n: int) -> bytes:
    return orjson.dumps({"@timestamp": "2026-02-03T10:00:00+00:00", "event": {"code": str(n)}})


async def wait_until(predicate, timeout: float = 5.0) -> None:
    for _ in range(int(timeout / 0.01)):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not reached")


async def test_events_are_acked_only_after_their_batch_is_indexed() -> None:
    client = RecordingClient()
    agent, _sent = make_app(client)
    async with agent.test_context() as a:
        events = [
            await a.put(ecs(n), key=b"s:1", headers={"doc_id": f"d{n}".encode()}, wait=False)
            for n in range(3)
        ]
        await asyncio.sleep(0.5)  # the batch is full and the bulk request is in flight
        assert not client.requests
        assert not any(e.message.acked for e in events)
        client.release.set()
        await wait_until(lambda: all(e.message.acked for e in events))
        assert [op["index"]["_id"] for op in client.requests[0][0::2]] == ["d0", "d1", "d2"]


async def test_an_interrupted_batch_is_not_acked() -> None:
    """A shutdown while the bulk request waits must leave the offsets uncommitted: the
    stream's own reference (which the conductor holds in a worker) stays."""
    client = RecordingClient()
    agent, _sent = make_app(client)
    async with agent.test_context() as a:
        events = [
            await a.put(ecs(n), headers={"doc_id": f"d{n}".encode()}, wait=False) for n in range(3)
        ]
        for event in events:
            event.message.incref()  # what the conductor does for each subscribed stream
        await asyncio.sleep(0.5)
    assert not any(e.message.acked for e in events)


async def test_settle_abandons_a_stuck_request_and_takes_no_new_batch() -> None:
    """The worker's stop: a request that does not finish within the grace is cancelled, and
    nothing taken afterwards is sent or acked (all of it is consumed again after a restart)."""
    client = RecordingClient()
    in_flight = index.InFlight()
    agent, _sent = make_app(client, in_flight=in_flight)
    async with agent.test_context() as a:
        events = [
            await a.put(ecs(n), headers={"doc_id": f"d{n}".encode()}, wait=False) for n in range(6)
        ]
        for event in events:
            event.message.incref()  # the conductor's reference, as in a worker
        await wait_until(lambda: len(in_flight.tasks) == 2)
        await in_flight.settle(0.1)
        assert all(task.cancelled() for task in in_flight.tasks)
        client.release.set()
        later = [
            await a.put(ecs(n), headers={"doc_id": f"d{n}".encode()}, wait=False)
            for n in range(6, 9)
        ]
        await asyncio.sleep(0.5)
        assert not client.requests
        assert not any(e.message.acked for e in events + later)


async def test_settle_lets_a_request_that_finishes_in_time_ack_its_events() -> None:
    client = RecordingClient()
    in_flight = index.InFlight()
    agent, _sent = make_app(client, in_flight=in_flight)
    async with agent.test_context() as a:
        events = [
            await a.put(ecs(n), headers={"doc_id": f"d{n}".encode()}, wait=False) for n in range(3)
        ]
        await wait_until(lambda: len(in_flight.tasks) == 1)
        asyncio.get_running_loop().call_later(0.2, client.release.set)
        await in_flight.settle(10)
        assert all(e.message.acked for e in events)
        assert len(client.requests) == 1


async def test_refused_documents_go_to_the_dead_letter_topic() -> None:
    client = RecordingClient(refuse=frozenset({"d1"}))
    client.release.set()
    agent, sent = make_app(client)
    async with agent.test_context() as a:
        for n in range(3):
            await a.put(ecs(n), key=b"s:1", headers={"doc_id": f"d{n}".encode()}, wait=False)
        await wait_until(lambda: len(sent) == 1)
    letter = orjson.loads(sent[0][1])
    assert letter["stage"] == "index"
    assert "strict_dynamic_mapping_exception" in letter["message"]
    assert orjson.loads(letter["original"])["event"]["code"] == "1"


@pytest.mark.parametrize("headers", [{"doc_id": b"abc"}, [("doc_id", b"abc")]])
def test_doc_id_header_forms(headers) -> None:
    event = type("E", (), {"headers": headers, "value": b"{}"})()
    assert index.doc_id_of(event) == "abc"
