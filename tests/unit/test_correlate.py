"""Session correlation: any arrival order, re-emission on a better diagnosis, expiry, bounds."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

import orjson
import pytest

from pipeline.correlate import Correlator, correlation_key, expired, observe

T0 = datetime(2026, 11, 20, 10, 15, 2, tzinfo=UTC)
WINDOW = 120.0


def traffic(sid=318075, reason="decrypt-error", **extra):
    return {
        "type": "TRAFFIC",
        "serial": "012801096514",
        "sessionid": sid,
        "seqno": 11,
        "subtype": "end",
        "time_generated": T0,
        "session_end_reason": reason,
        "rule": "outbound-web",
        "_original": f"TRAFFIC line {sid}",
        **extra,
    }


def decryption(sid=318075, **extra):
    fields = {
        "type": "DECRYPTION",
        "serial": "012801096514",
        "sessionid": sid,
        "seqno": 22,
        "time_generated": T0,
        "proxy_type": "Forward",
        "err_index": "Certificate",
        "error": "Received fatal alert UnknownCA from client",
        "sni": "docs.example.com",
        "_original": f"DECRYPTION line {sid}",
    }
    fields.update(extra)
    return fields


def session(sid=318075, **extra):
    return {
        "type": "SESSION",
        "serial": "012801096514",
        "sessionid": sid,
        "tracker_stage_firewall": "TCP RST - client",
        "session_end_reason": "decrypt-error",
        "_original": f"SESSION output {sid}",
        **extra,
    }


def no_reparse(text):
    raise AssertionError("re-parse not expected")


def rebuilt(text):
    # Stands in for the parser: the re-emitted record is rebuilt from its original text.
    return {"rebuilt_from": text}


def test_key():
    assert correlation_key(traffic()) == "012801096514:318075"
    assert correlation_key({"type": "SESSION", "sessionid": 5}) == ":5"
    assert correlation_key({"type": "SYSTEM", "sessionid": 5, "serial": "x"}) is None
    assert correlation_key({"type": "TRAFFIC", "serial": "x"}) is None


@pytest.mark.parametrize(
    "order",
    list(itertools.permutations(["TRAFFIC", "DECRYPTION", "SESSION"])),
    ids="-".join,
)
def test_every_arrival_order_ends_with_the_specific_cause_everywhere(order):
    makers = {"TRAFFIC": traffic, "DECRYPTION": decryption, "SESSION": session}
    entry = None
    final: dict[str, str | None] = {}
    seen_decryption = False
    for step, kind in enumerate(order):
        entry, emits = observe(entry, makers[kind](), float(step), WINDOW, reparse=rebuilt)
        assert orjson.loads(orjson.dumps(entry)) == entry  # changelog-able
        first = emits[0]
        assert first.record["type"] == kind and not first.reemit
        seen_decryption = seen_decryption or kind == "DECRYPTION"
        if step:
            assert first.correlation == {
                "key": "012801096514:318075",
                "joined": list(order[: step + 1]),
                "count": step + 1,
            }
        else:
            assert first.correlation is None
        for emit in emits:
            final[emit.record.get("type") or emit.original.split()[0]] = (
                emit.diagnosis.cause if emit.diagnosis else None
            )
            if emit.reemit:
                assert emit.record == {"rebuilt_from": emit.original}
                assert emit.correlation["count"] == step + 1
    assert final["TRAFFIC"] == "client-rejected-firewall-cert"
    assert final["DECRYPTION"] == "client-rejected-firewall-cert"
    assert final["SESSION"] == "client-rejected-firewall-cert"
    assert [s["type"] for s in entry["slots"]] == list(order)


def test_traffic_first_is_reemitted_once_with_the_decryption_cause():
    entry, emits = observe(None, traffic(), 0.0, WINDOW)
    assert [e.diagnosis.cause for e in emits] == ["decrypt-error"]
    entry, emits = observe(entry, decryption(), 1.0, WINDOW, reparse=rebuilt)
    assert [(e.record.get("type"), e.reemit) for e in emits] == [
        ("DECRYPTION", False),
        (None, True),
    ]
    reemit = emits[1]
    assert reemit.original == "TRAFFIC line 318075"
    assert reemit.diagnosis.cause == "client-rejected-firewall-cert"
    assert reemit.diagnosis.evidence[0]["source"] == "DECRYPTION"
    # a third record that changes nothing re-emits nothing
    entry, emits = observe(entry, session(), 2.0, WINDOW, reparse=no_reparse)
    assert [e.reemit for e in emits] == [False]


def test_reemit_falls_back_to_the_compact_record():
    entry, _ = observe(None, traffic(_original=None), 0.0, WINDOW)
    _, emits = observe(entry, decryption(), 1.0, WINDOW, reparse=no_reparse)
    record = emits[1].record
    assert record["type"] == "TRAFFIC" and record["sessionid"] == 318075
    assert record["time_generated"] == T0  # datetimes survive the JSON-safe entry
    assert record["rule"] == "outbound-web"


def test_non_failure_becomes_failure_when_decryption_joins():
    entry, emits = observe(None, traffic(reason="tcp-rst-from-client"), 0.0, WINDOW)
    assert emits[0].diagnosis is None
    _, emits = observe(entry, decryption(), 1.0, WINDOW, reparse=rebuilt)
    assert emits[1].reemit and emits[1].diagnosis.cause == "client-rejected-firewall-cert"


def test_unjoinable_record_passes_through():
    entry, emits = observe(None, {"type": "SYSTEM", "subtype": "general"}, 0.0, WINDOW)
    assert entry is None
    assert len(emits) == 1 and emits[0].diagnosis is None and emits[0].correlation is None


def test_same_type_replaces_its_slot():
    entry, _ = observe(None, traffic(reason="n/a", subtype="start"), 0.0, WINDOW)
    entry, emits = observe(entry, traffic(), 1.0, WINDOW)
    assert [s["type"] for s in entry["slots"]] == ["TRAFFIC"]
    assert emits[0].correlation is None


def test_expiry_starts_a_fresh_entry():
    entry, _ = observe(None, traffic(), 0.0, WINDOW)
    assert not expired(entry, WINDOW, WINDOW)
    assert expired(entry, WINDOW + 0.1, WINDOW)
    entry, emits = observe(entry, decryption(), WINDOW + 5.0, WINDOW, reparse=no_reparse)
    assert len(emits) == 1 and emits[0].correlation is None
    assert [s["type"] for s in entry["slots"]] == ["DECRYPTION"]
    assert entry["first"] == WINDOW + 5.0


def test_window_is_measured_from_the_last_record():
    entry, _ = observe(None, traffic(), 0.0, WINDOW)
    entry, _ = observe(entry, session(), 100.0, WINDOW)
    assert not expired(entry, 200.0, WINDOW)
    _, emits = observe(entry, decryption(), 200.0, WINDOW, reparse=rebuilt)
    assert emits[0].correlation["count"] == 3


def test_correlator_counts_and_expires():
    c = Correlator(window_s=WINDOW, max_entries=100)
    c.observe(traffic(sid=1), 0.0)
    c.observe(decryption(sid=1), 1.0)
    c.observe(traffic(sid=2), 2.0)
    assert c.live_entries == 2
    assert c.correlated == 1
    c.observe(session(sid=1), 3.0)
    assert c.correlated == 1  # the same session is counted once
    assert c.expire(2.0 + WINDOW - 0.5) == 0
    assert c.expire(3.0 + WINDOW + 1.0) == 2
    assert c.live_entries == 0 and c.expired == 2


def test_correlator_is_bounded():
    c = Correlator(window_s=WINDOW, max_entries=3)
    for sid in range(10):
        c.observe(traffic(sid=sid), float(sid) / 100)
    assert c.live_entries == 3
    assert c.evicted == 7
    assert set(c.entries) == {f"012801096514:{sid}" for sid in (7, 8, 9)}
    # the least recently updated entry goes first
    c.observe(decryption(sid=7), 0.5)
    c.observe(traffic(sid=10), 0.6)
    assert set(c.entries) == {f"012801096514:{sid}" for sid in (7, 9, 10)}


def test_correlator_rejects_bad_bounds():
    with pytest.raises(ValueError):
        Correlator(window_s=0)
    with pytest.raises(ValueError):
        Correlator(max_entries=0)
