"""Session correlation: any arrival order, re-emission on a better diagnosis, expiry, bounds."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

import orjson
import pytest

from pipeline.correlate import Sessions, correlation_key, expired, observe

T0 = datetime(2026, 11, 20, 10, 15, 2, tzinfo=UTC)
WINDOW = 120.0


def traffic(sid=318075, reason="decrypt-error", **extra):
    return made(
        {
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
    )


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
    return made(fields)


def session(sid=318075, **extra):
    return made(
        {
            "type": "SESSION",
            "serial": "012801096514",
            "sessionid": sid,
            "tracker_stage_firewall": "TCP RST - client",
            "session_end_reason": "decrypt-error",
            "_original": f"SESSION output {sid}",
            **extra,
        }
    )


def no_reparse(text):
    raise AssertionError("re-parse not expected")


# The records the makers above built, by their text: what parsing that text again gives.
PARSED: dict[str, dict] = {}


def made(record: dict) -> dict:
    if record.get("_original"):
        PARSED[record["_original"]] = record
    return record


def rebuilt(text):
    # Stands in for the parser: a stored record is rebuilt by parsing its text again.
    return {**PARSED[text], "rebuilt_from": text}


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
                assert emit.record["rebuilt_from"] == emit.original
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
        ("TRAFFIC", True),
    ]
    assert emits[1].record["rebuilt_from"] == "TRAFFIC line 318075"
    reemit = emits[1]
    assert reemit.original == "TRAFFIC line 318075"
    assert reemit.diagnosis.cause == "client-rejected-firewall-cert"
    assert reemit.diagnosis.evidence[0]["source"] == "DECRYPTION"
    # a third record that changes nothing re-emits nothing
    entry, emits = observe(entry, session(), 2.0, WINDOW, reparse=rebuilt)
    assert [e.reemit for e in emits] == [False]


def test_an_entry_keeps_the_message_not_a_copy_of_the_record():
    entry, _ = observe(None, decryption(), 0.0, WINDOW)
    [slot] = entry["slots"]
    assert slot == {
        "type": "DECRYPTION",
        "original": "DECRYPTION line 318075",
        "cause": "client-rejected-firewall-cert",
        "confidence": slot["confidence"],
    }


def test_reemit_falls_back_to_the_compact_record():
    entry, _ = observe(None, traffic(_original=None), 0.0, WINDOW)
    _, emits = observe(entry, decryption(), 1.0, WINDOW, reparse=no_reparse)
    record = emits[1].record
    assert record["type"] == "TRAFFIC" and record["sessionid"] == 318075
    assert record["time_generated"] == T0  # datetimes survive the JSON-safe entry
    assert record["rule"] == "outbound-web"


def test_an_ordinary_traffic_end_stores_nothing_but_joins_a_live_failure():
    # State only where a join can happen: a TRAFFIC end that is not a failure, with no live
    # entry of its session, leaves no entry behind ...
    entry, emits = observe(None, traffic(reason="tcp-rst-from-client"), 0.0, WINDOW)
    assert entry is None and emits[0].diagnosis is None
    # ... and neither does a successful handshake ...
    ok = decryption(err_index="None", error="", proxy_type="Forward")
    entry, emits = observe(None, ok, 0.0, WINDOW)
    assert entry is None and emits[0].diagnosis is None
    # ... but after a decryption failure of its session, it joins it and takes its cause.
    entry, _ = observe(None, decryption(), 0.0, WINDOW)
    entry, emits = observe(
        entry, traffic(reason="tcp-rst-from-client"), 1.0, WINDOW, reparse=rebuilt
    )
    assert [s["type"] for s in entry["slots"]] == ["DECRYPTION", "TRAFFIC"]
    assert emits[0].diagnosis.cause == "client-rejected-firewall-cert"


def test_decrypt_end_reasons_and_session_outputs_open_an_entry():
    entry, _ = observe(None, traffic(), 0.0, WINDOW)
    assert entry is not None
    entry, _ = observe(None, session(), 0.0, WINDOW)
    assert entry is not None


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


def _store(sessions: Sessions, record, now: float, joined_before: int = 0) -> None:
    key = correlation_key(record)
    before = sessions.get(key)
    entry, _ = observe(before, record, now, WINDOW, reparse=rebuilt)
    if entry is not None:
        joined = int(len(entry["slots"]) >= 2 and (before is None or len(before["slots"]) < 2))
        sessions.apply({key: entry}, joined)


def test_sessions_count_and_expire():
    s = Sessions(window_s=WINDOW, max_entries=100)
    _store(s, traffic(sid=1), 0.0)
    _store(s, decryption(sid=1), 1.0)
    _store(s, traffic(sid=2), 2.0)
    assert len(s) == 2
    assert s.correlated == 1
    _store(s, session(sid=1), 3.0)
    assert s.correlated == 1  # the same session is counted once
    assert s.expire(2.0 + WINDOW - 0.5) == 0
    assert s.expire(3.0 + WINDOW + 1.0) == 2
    assert len(s) == 0 and s.expired == 2


def test_sessions_are_bounded():
    s = Sessions(window_s=WINDOW, max_entries=3)
    for sid in range(10):
        _store(s, traffic(sid=sid), float(sid) / 100)
    assert len(s) == 3
    assert s.evicted == 7
    assert set(s.entries) == {f"012801096514:{sid}" for sid in (7, 8, 9)}
    # the entry written longest ago goes first
    _store(s, decryption(sid=7), 0.5)
    _store(s, traffic(sid=10), 0.6)
    assert set(s.entries) == {f"012801096514:{sid}" for sid in (7, 9, 10)}
    s.apply({"012801096514:9": None})
    assert set(s.entries) == {f"012801096514:{sid}" for sid in (7, 10)}


def test_sessions_reject_bad_bounds():
    with pytest.raises(ValueError):
        Sessions(window_s=0)
    with pytest.raises(ValueError):
        Sessions(max_entries=0)
