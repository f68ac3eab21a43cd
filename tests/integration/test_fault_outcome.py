"""The fault scenarios' outcome counts what they claim on the real Elasticsearch: an event
indexed into two daily indices (its time on both sides of midnight) is a duplicate, although
its ``_id`` is unique within each index."""

from __future__ import annotations

import dataclasses

import pytest

from pipeline.sinks import es_templates
from tests.faults.harness import event_id, event_line, outcome

pytestmark = pytest.mark.integration


def test_an_event_in_two_daily_indices_counts_as_duplicated(settings, run_prefix, es_client):
    s = dataclasses.replace(settings, index_prefix=f"{run_prefix}-outcome")
    es_templates.setup_elasticsearch(es_client, s.index_prefix)
    wanted = {event_id(n, 7) for n in range(3)}
    serial, log_type, _ = next(iter(wanted)).split(":")
    for n in range(3):
        seqno = int(event_id(n, 7).rsplit(":", 1)[1])
        doc = {
            "@timestamp": "2026-11-20T23:59:59+00:00",
            "observer": {"serial_number": serial},
            "panw": {"panos": {"type": log_type, "sequence_number": seqno}},
        }
        es_client.index(index=f"{s.index_prefix}-2026.11.20", id=event_id(n, 7), document=doc)
        if n == 0:
            # the same event once more, a second later: the next day's index
            after = {**doc, "@timestamp": "2026-11-21T00:00:00+00:00"}
            es_client.index(index=f"{s.index_prefix}-2026.11.21", id=event_id(n, 7), document=after)
    assert event_line(0, 7)  # the lines the scenarios send carry these ids
    result = outcome(s, wanted)
    assert (result.indexed, result.missing, result.duplicated, result.unexpected) == (3, 0, 1, 0)
