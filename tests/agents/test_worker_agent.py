"""The worker's batch agent in Faust's test context: raw syslog in batches -> ECS events
published and indexed, dead letters, the correlation table, window counts, and no ack before
a batch is indexed.

The Elasticsearch client here is a recording stand-in (this tests the agent's batching and
acking, not Elasticsearch; the sink against the real cluster is in tests/integration, the
whole worker against real Kafka and Elasticsearch in tests/e2e and tests/faults)."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import orjson
import pytest
from faust.serializers import codecs
from faust.types import TP
from prometheus_client import CollectorRegistry

from pipeline import wire
from pipeline.metrics import build_metrics
from pipeline.settings import Settings
from pipeline.stream.app import create_app
from pipeline.stream.indexing import InFlight
from pipeline.stream.tables import PARTITION_KEY

GOLDEN = Path(__file__).resolve().parent.parent / "golden" / "diagnosis"
SERIAL = b"012801096514"


def lines(case: str) -> list[bytes]:
    data = (GOLDEN / f"{case}.log").read_bytes().splitlines()
    return [x for x in data if x.strip() and not x.startswith(b"#")]


class RecordingClient:
    """Answers bulk requests like Elasticsearch would, once ``release`` is set."""

    def __init__(self, refuse: frozenset[str] = frozenset()) -> None:
        self.release = asyncio.Event()
        self.requests: list[list[dict]] = []
        self.refuse = refuse

    async def bulk(self, operations: bytes, refresh: bool = False) -> dict:
        await self.release.wait()
        parsed = [orjson.loads(x) for x in operations.split(b"\n") if x]
        ops = parsed[0::2]
        self.requests.append(parsed)
        items = []
        for op in ops:
            doc_id = op["index"]["_id"]
            if doc_id in self.refuse:
                error = {"type": "strict_dynamic_mapping_exception", "reason": "no"}
                items.append({"index": {"_id": doc_id, "status": 400, "error": error}})
            else:
                items.append({"index": {"_id": doc_id, "status": 201, "result": "created"}})
        return {"errors": bool(self.refuse & {o["index"]["_id"] for o in ops}), "items": items}

    async def close(self) -> None:
        return None


class Recorder:
    """Stands in for the producer on the output topics (the producer is not under test)."""

    def __init__(self) -> None:
        self.sent: dict[str, list[dict]] = {"events": [], "dlq": [], "counts": [], "log": []}

    def send_soon(self, name: str):
        def send_soon(key=None, value=None, headers=None, **_kwargs):
            self.sent[name].append({"key": key, "value": value, "headers": headers})

        return send_soon

    def send(self, name: str):
        async def send(key=None, value=None, headers=None, **_kwargs):
            self.sent[name].append({"key": key, "value": value, "headers": headers})

        return send


@pytest.fixture
def make(tmp_path, request):
    def make(client: RecordingClient | None = None, **overrides):
        hold_bulk = overrides.pop("hold_bulk", False)
        settings = dataclasses.replace(
            Settings(),
            worker_id=f"test-worker-{request.node.name[:30]}",
            worker_data_dir=str(tmp_path),
            kafka_bootstrap="127.0.0.1:1",
            batch_size=overrides.pop("batch_size", 50),
            batch_max_wait_s=0.1,
            alerts_index="",
            **overrides,
        )
        client = client or RecordingClient()
        if not hold_bulk:
            client.release.set()
        app = create_app(
            settings,
            metrics=build_metrics(CollectorRegistry()),
            with_metrics_endpoint=False,
            es_client=client,
        )
        parts = app.decryptscope
        recorder = Recorder()
        topics = parts["topics"]
        table = parts["table"]
        changelog = table.changelog_topic.get_topic_name()
        names = {
            topics.events.get_topic_name(): "events",
            topics.dlq.get_topic_name(): "dlq",
        }

        # the signature of Faust's Producer.send: every argument is required
        async def produce(topic, key, value, partition, _timestamp, headers, **_kwargs):
            if topic == changelog:
                # decoded the way Faust decodes the changelog when it restores the table
                recorder.sent["log"].append(
                    {
                        "partition": partition,
                        "key": codecs.loads("json", key),
                        "value": None if value is None else codecs.loads("json", value),
                    }
                )
                return
            recorder.sent[names[topic]].append(
                {"key": key, "value": value, "headers": dict(headers or ())}
            )

        app.producer.send = produce
        topics.dlq.send = recorder.send("dlq")
        topics.failure_counts.send_soon = recorder.send_soon("counts")

        def send_changelog(partition, key, value, **_kwargs):
            recorder.sent["log"].append({"partition": partition, "key": key, "value": value})

        table.send_changelog = send_changelog
        return app, recorder, client

    return make


async def wait_until(predicate, timeout: float = 5.0) -> None:
    for _ in range(int(timeout / 0.01)):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not reached")


async def put_all(app, values: list[bytes], *, settle: float = 0.4) -> list:
    agent = app.agents["process"]
    async with agent.test_context() as a:
        events = [await a.put(v, key=SERIAL, wait=False) for v in values]
        await asyncio.sleep(settle)
    return events


def docs(recorder: Recorder) -> list[dict]:
    return [orjson.loads(e["value"]) for e in recorder.sent["events"]]


async def test_a_failure_line_becomes_one_event_published_and_indexed(make) -> None:
    app, rec, client = make()
    await put_all(app, lines("server-cert-expired"))
    assert not rec.sent["dlq"]
    [event] = rec.sent["events"]
    assert event["key"] == b"012801096514:1001"
    assert event["headers"] == {"doc_id": b"012801096514:DECRYPTION:7451000000000001001"}
    doc = orjson.loads(event["value"])
    assert doc["decryptscope"]["cause"] == "server-cert-expired"
    assert doc["event"]["original"].startswith("<14>")
    [request] = client.requests
    assert request[0]["index"]["_id"] == "012801096514:DECRYPTION:7451000000000001001"
    assert request[0]["index"]["_index"].startswith("decryptscope-events-")
    assert request[1] == doc


async def test_unparseable_lines_are_dead_lettered_with_a_reason(make) -> None:
    app, rec, _client = make()
    bad = [b"<14>Nov 20 10:15:03 fw hello world", b"\xff\xfe\x00garbage", b""]
    await put_all(app, [*bad, *lines("server-cert-expired")])
    assert len(rec.sent["events"]) == 1
    letters = [orjson.loads(x["value"]) for x in rec.sent["dlq"]]
    assert len(letters) == 3
    for letter in letters:
        assert letter["stage"] == "parse"
        assert letter["error_type"]
        assert letter["message"]
        assert letter["offset"] is not None
    assert letters[0]["original"] == bad[0].decode()
    assert "original_b64" in letters[1]


async def test_an_oversized_fragment_and_a_replayed_letter_keep_their_headers(make) -> None:
    app, rec, _client = make()
    agent = app.agents["process"]
    async with agent.test_context() as a:
        await a.put(b"<14>Nov 20 10:15:03 fw 1,2", headers={wire.CUT_HEADER: b"65536"})
        await a.put(b"not a log", headers=[(wire.REPLAY_HEADER, b"panos.dlq/0/17")])
        await asyncio.sleep(0.3)
    cut, replayed = (orjson.loads(x["value"]) for x in rec.sent["dlq"])
    assert cut["error_type"] == "oversized"
    assert replayed["replay_of"] == "panos.dlq/0/17"


@pytest.mark.parametrize("batch_size", [1, 50])
@pytest.mark.parametrize("order", ["traffic-first", "decryption-first"])
async def test_traffic_and_decryption_of_a_session_are_correlated(make, order, batch_size):
    app, rec, _client = make(batch_size=batch_size)
    traffic, decryption = lines("decrypt-error-joined")
    await put_all(app, [traffic, decryption] if order == "traffic-first" else [decryption, traffic])
    latest: dict[str, dict] = {}
    for event in rec.sent["events"]:
        latest[event["headers"]["doc_id"].split(b":")[1].decode()] = orjson.loads(event["value"])
    assert set(latest) == {"TRAFFIC", "DECRYPTION"}
    traffic_doc = latest["TRAFFIC"]  # the last version sent of the TRAFFIC event
    assert traffic_doc["decryptscope"]["cause"] == "client-rejected-firewall-cert"
    correlation = traffic_doc["decryptscope"]["correlation"]
    assert correlation["key"] == "012801096514:1026"
    assert sorted(correlation["joined"]) == ["DECRYPTION", "TRAFFIC"]
    # in one batch the TRAFFIC event is sent once, in its final form
    expected_sends = 3 if (batch_size == 1 and order == "traffic-first") else 2
    assert len(rec.sent["events"]) == expected_sends
    entry = app.decryptscope["table"].data["012801096514:1026"]
    assert entry["key"] == "012801096514:1026"
    assert entry[PARTITION_KEY] == 0
    # what the changelog holds restores the same entry
    [*_, last] = (w for w in rec.sent["log"] if w["key"] == "012801096514:1026")
    assert last["value"] == entry and last["partition"] == 0


async def test_one_table_write_per_session_per_batch_and_none_for_successes(make) -> None:
    app, rec, _client = make()
    traffic, decryption = lines("decrypt-error-joined")
    success = lines("none-successful-handshake")
    await put_all(app, [*success, traffic, decryption])
    keys = [w["key"] for w in rec.sent["log"]]
    assert keys == ["012801096514:1026"]  # the failure session, once; the success: never
    assert len(rec.sent["events"]) == 3


async def test_events_are_acked_only_after_their_batch_is_indexed(make) -> None:
    client = RecordingClient()
    app, rec, _client = make(client, hold_bulk=True)
    agent = app.agents["process"]
    async with agent.test_context() as a:
        events = [await a.put(v, key=SERIAL, wait=False) for v in lines("decrypt-error-joined")]
        await asyncio.sleep(0.4)  # the batch is processed and its bulk request in flight
        assert len(rec.sent["events"]) == 2
        assert not any(e.message.acked for e in events)
        client.release.set()
        await wait_until(lambda: all(e.message.acked for e in events))
        assert len(client.requests) == 1


async def test_an_interrupted_batch_is_not_acked(make) -> None:
    client = RecordingClient()
    app, _rec, _client = make(client, hold_bulk=True)
    agent = app.agents["process"]
    async with agent.test_context() as a:
        events = [await a.put(v, wait=False) for v in lines("decrypt-error-joined")]
        for event in events:
            event.message.incref()  # what the conductor does for each subscribed stream
        await asyncio.sleep(0.4)
    assert not any(e.message.acked for e in events)


async def test_settle_abandons_a_stuck_request_and_takes_no_new_batch(make) -> None:
    client = RecordingClient()
    app, _rec, _client = make(client, hold_bulk=True, batch_size=1)
    in_flight: InFlight = app.decryptscope["in_flight"]
    agent = app.agents["process"]
    first = lines("decrypt-error-joined") + lines("server-cert-expired")
    async with agent.test_context() as a:
        events = [await a.put(v, wait=False) for v in first]
        for event in events:
            event.message.incref()  # the conductor's reference, as in a worker
        await wait_until(lambda: len(in_flight.tasks) == 2)
        await in_flight.settle(0.1)
        assert all(task.cancelled() for task in in_flight.tasks)
        client.release.set()
        later = [await a.put(v, wait=False) for v in lines("certificate-pinning")]
        await asyncio.sleep(0.4)
        assert not client.requests
        assert not any(e.message.acked for e in events + later)


async def test_refused_documents_go_to_the_dead_letter_topic(make) -> None:
    refused = "012801096514:DECRYPTION:7451000000000001001"
    app, rec, _client = make(RecordingClient(refuse=frozenset({refused})))
    await put_all(app, lines("server-cert-expired"))
    [letter] = (orjson.loads(x["value"]) for x in rec.sent["dlq"])
    assert letter["stage"] == "index"
    assert "strict_dynamic_mapping_exception" in letter["message"]
    assert orjson.loads(letter["original"])["decryptscope"]["cause"] == "server-cert-expired"


async def test_failures_are_counted_per_window_and_sent_when_it_ends(make) -> None:
    app, rec, _client = make()
    windows = app.decryptscope["windows"]
    await put_all(app, lines("server-cert-expired") + lines("certificate-pinning"))
    assert not rec.sent["counts"]  # the window has not ended
    [window] = {window for _cause, window in windows.open}
    due = windows.due((window + 1) * windows.window_s)
    assert sorted(c.cause for c in due) == ["certificate-pinning", "server-cert-expired"]
    assert all(c.count == 1 for c in due)


async def test_the_correlation_table_expires_and_stays_bounded(make) -> None:
    app, rec, _client = make(correlation_max_entries=2)
    raw = app.decryptscope["topics"].raw.get_topic_name()
    app.assignor.assigned_actives = lambda: {TP(raw, 0)}  # as after a rebalance
    correlation = app.decryptscope["correlation"]
    failures = [lines(c)[0] for c in ("server-cert-expired", "certificate-pinning")]
    failures += lines("decrypt-error-joined")[:1]
    await put_all(app, failures)
    assert len(correlation) == 2  # three sessions, the oldest evicted in the batch
    owned = {0}.__contains__
    later = max(e["last"] for e in correlation.entries.values()) + 121
    assert correlation.expire(later, owned) == 2
    assert len(correlation) == 0
    tombstones = [w for w in rec.sent["log"] if w["value"] is None]
    assert len(tombstones) == 3  # one eviction, two expiries, each to its partition
    assert {w["partition"] for w in tombstones} == {0}


CHANGES = GOLDEN.parent / "changes"


async def test_a_change_point_is_published_noticed_and_a_cert_expiry_alerts_at_once(make) -> None:
    app, rec, client = make(topic_partitions=3)
    topics = app.decryptscope["topics"]
    notices: list[dict] = []
    alerts: list[dict] = []
    topics.failure_counts.send_soon = lambda **kw: notices.append(kw)
    topics.alerts.send_soon = lambda **kw: alerts.append(kw)
    # System Log Reference, crypto/cert-expiry (the golden case's first line)
    text = (CHANGES / "system-certificates.log").read_bytes().splitlines()
    expiry = next(x for x in text if b",cert-expiry," in x)
    await put_all(app, [expiry])
    record_doc, change_doc = docs(rec)
    assert record_doc["event"]["dataset"] == "panw.panos"
    assert change_doc["event"]["dataset"] == "decryptscope.change"
    assert change_doc["decryptscope"]["change"]["kind"] == "certificate-expired"
    indexed = [op["index"]["_id"] for request in client.requests for op in request[0::2]]
    assert change_doc["decryptscope"]["change"]["id"] in indexed
    # the change goes to every partition of the window-counts topic, for every detector
    assert sorted(n["partition"] for n in notices) == [0, 1, 2]
    notice = wire.decode_counts_message(notices[0]["value"])
    assert isinstance(notice, wire.ChangeNotice) and notice.kind == "certificate-expired"
    [alert] = [orjson.loads(a["value"]) for a in alerts]
    assert alert["kind"] == "certificate_expired" and alert["severity"] == "critical"
    assert alert["change"]["id"] == change_doc["decryptscope"]["change"]["id"]
