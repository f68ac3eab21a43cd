"""The worker's per-event paths without Faust: the bounded correlation table, the daily index
and id carried with each event, the encoded bulk body, and the failure view spike detection
decodes."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from pathlib import Path

import orjson
import pytest
from prometheus_client import CollectorRegistry

from pipeline.alerting import failure_from_event
from pipeline.metrics import build_metrics
from pipeline.settings import Settings
from pipeline.sinks.elasticsearch import BulkWriter, index_for
from pipeline.stream.index import index_of
from pipeline.stream.processing import PARTITION_KEY, EntryOrder, Processor
from pipeline.stream.topics import FailureViewCodec, failure_view

GOLDEN = Path(__file__).resolve().parent.parent / "golden" / "diagnosis"


def golden_lines() -> list[bytes]:
    out = []
    for path in sorted(GOLDEN.glob("*.log")):
        out += [x for x in path.read_bytes().splitlines() if x.strip() and not x.startswith(b"#")]
    return out


def test_entry_order_evicts_the_oldest_entries_of_the_partition_only() -> None:
    table: dict = {}
    order = EntryOrder(max_entries=3)
    for n, partition in enumerate([0, 1, 0, 0, 1]):
        key = f"s:{n}"
        table[key] = {"last": float(n), PARTITION_KEY: partition}
        order.touch(table, partition, key)
    order.touch(table, 0, "s:0")  # written again: now the newest of partition 0
    assert order.evict(table, 0) == 2
    assert sorted(table) == ["s:0", "s:1", "s:4"]
    assert order.evict(table, 0) == 0  # within the cap


def test_entry_order_takes_in_restored_entries_oldest_first() -> None:
    table = {
        "a": {"last": 5.0, PARTITION_KEY: 2},
        "b": {"last": 1.0, PARTITION_KEY: 2},
        "c": {"last": 0.0, PARTITION_KEY: 7},
    }
    order = EntryOrder(max_entries=2)
    table["d"] = {"last": 9.0, PARTITION_KEY: 2}
    order.touch(table, 2, "d")
    assert order.evict(table, 2) == 2
    assert sorted(table) == ["c", "d"]  # "b" then "a" went; partition 7's entry stayed


def test_processor_bounds_its_table_and_carries_index_and_id() -> None:
    metrics = build_metrics(CollectorRegistry())
    settings = dataclasses.replace(Settings(), correlation_max_entries=2, index_prefix="t")
    processor = Processor(settings, metrics=metrics)
    table: dict = {}
    lines = golden_lines()
    outgoing = []
    handled = 0
    for line in lines:
        try:
            outgoing += processor.handle(line, table, time.time(), 0)
        except Exception:
            continue
        handled += 1
        processor.order.evict(table, 0)
    assert outgoing
    assert len(table) <= 2
    for out in outgoing:
        doc = orjson.loads(out.value)
        assert out.index.decode() == index_for(doc, "t")
        assert out.index.startswith(b"t-")
    parsed = metrics.registry.get_sample_value("decryptscope_parse_duration_seconds_count")
    assert parsed == handled > 2


def test_index_of_reads_the_header_or_the_document() -> None:
    doc = orjson.dumps({"@timestamp": "2026-02-03T23:30:00-02:00"})
    event = type("E", (), {"headers": [("index", b"x-2026.01.01")], "value": doc})()
    assert index_of(event, "p") == "x-2026.01.01"
    event.headers = None
    assert index_of(event, "p") == "p-2026.02.04"
    event.value = b"not json"
    with pytest.raises(ValueError):
        index_of(event, "p")
    event.value = b'{"a":\n1}'
    event.headers = {"index": b"x"}
    with pytest.raises(ValueError):
        index_of(event, "p")


def test_write_encoded_puts_the_bytes_in_the_body_as_they_are() -> None:
    class Client:
        body = b""

        async def bulk(self, operations: bytes, refresh: bool = False) -> dict:
            Client.body = operations
            return {"errors": True, "items": [{"index": {"status": 201}}, bad]}

    bad = {"index": {"status": 400, "error": {"type": "mapper_parsing_exception", "reason": "r"}}}
    writer = BulkWriter(Client(), Settings(), metrics=build_metrics(CollectorRegistry()))
    docs = [("a", "i-1", b'{"x":1}'), ("b", "i-2", b'{"x":"y"}')]
    rejected = asyncio.run(writer.write_encoded(docs))
    assert Client.body == (
        b'{"index":{"_index":"i-1","_id":"a"}}\n{"x":1}\n'
        b'{"index":{"_index":"i-2","_id":"b"}}\n{"x":"y"}\n'
    )
    assert [(r.doc_id, r.document, r.status) for r in rejected] == [("b", b'{"x":"y"}', 400)]


def test_the_failure_view_keeps_what_spike_detection_reads() -> None:
    processor = Processor(Settings(), metrics=None)
    codec = FailureViewCodec()
    failures = 0
    for line in golden_lines():
        try:
            outgoing = processor.handle(line, {}, time.time(), 0)
        except Exception:
            continue
        for out in outgoing:
            doc = orjson.loads(out.value)
            view = codec._loads(out.value)
            assert failure_from_event(view) == failure_from_event(doc)
            failures += failure_from_event(doc) is not None
            assert codec._loads(codec._dumps(view)) == view  # re-keyed copies decode the same
    assert failures
    assert failure_view({"decryptscope": {"failure": False}}) == {}
