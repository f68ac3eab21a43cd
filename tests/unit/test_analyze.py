"""The offline report: failures per session by cause and mode, tops, span, timeline."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson

from pipeline.chain import Chain, ChainConfig, Message, run_all
from pipeline.correlate import Sessions
from pipeline.report.aggregate import Analyzer

T0 = datetime(2026, 11, 20, 10, 0, 0, tzinfo=UTC)


def analyze_records(records, *, window_s: float = 120.0, batch: int = 5) -> dict:
    """The report of records given as parsed (the chain's parse step takes them as they are),
    in batches of ``batch`` so that sessions also span batches."""
    chain = Chain(ChainConfig(window_s=window_s, event_time=True), parse=dict)
    sessions = Sessions(window_s)
    analyzer = Analyzer(chain.classifier.catalogue, sessions)
    clock = 0.0
    for i in range(0, len(records), batch):
        result = run_all(chain, [Message(r) for r in records[i : i + batch]], sessions, clock)
        clock = result.clock
        analyzer.add(result)
    return analyzer.report()


def dec(sid, minute, error, sni, **extra):
    return {
        "type": "DECRYPTION",
        "serial": "012801096514",
        "sessionid": sid,
        "seqno": 1000 + sid,
        "time_generated": T0 + timedelta(minutes=minute),
        "proxy_type": "Forward",
        "err_index": "Certificate",
        "error": error,
        "sni": sni,
        "src": "192.0.2.10",
        "policy_name": "decrypt-outbound",
        "device_name": "fw-edge-01",
        **extra,
    }


def tra(sid, minute, reason, **extra):
    return {
        "type": "TRAFFIC",
        "serial": "012801096514",
        "sessionid": sid,
        "seqno": 5000 + sid,
        "time_generated": T0 + timedelta(minutes=minute, seconds=2),
        "session_end_reason": reason,
        "rule": "outbound-web",
        "src": "192.0.2.10",
        "dst": "203.0.113.20",
        **extra,
    }


UNKNOWN_CA = "Received fatal alert UnknownCA from client"
EXPIRED = "Received fatal alert CertificateExpired from client"


def records():
    out = []
    for sid in range(6):  # six sessions: DECRYPTION + TRAFFIC decrypt-error each
        out.append(dec(sid, sid, UNKNOWN_CA, "docs.example.com" if sid < 4 else "wiki.example.com"))
        out.append(tra(sid, sid, "decrypt-error"))
    out.append(dec(10, 30, EXPIRED, "old.example.net"))
    out.append(tra(11, 59, "decrypt-unsupport-param"))  # alone: end reason only
    out.append(tra(12, 59, "tcp-fin"))  # not a failure
    return out


def test_report_counts_sessions_by_cause_and_mode():
    report = analyze_records(records())
    assert report["records"] == 15
    assert report["records_by_type"] == {"TRAFFIC": 8, "DECRYPTION": 7}
    assert report["failures"] == {"sessions": 8, "events": 14}
    assert report["correlation"]["sessions_correlated"] == 6
    causes = {c["cause"]: c for c in report["causes"]}
    assert next(c["cause"] for c in report["causes"]) == "client-rejected-firewall-cert"
    assert causes["client-rejected-firewall-cert"]["count"] == 6
    assert causes["client-rejected-firewall-cert"]["share"] == 6 / 8
    assert causes["server-cert-expired"]["count"] == 1
    assert causes["unsupported-parameter"]["count"] == 1
    assert {m["mode"]: m["count"] for m in report["modes"]} == {"forward-proxy": 7, "unknown": 1}
    top = causes["client-rejected-firewall-cert"]
    assert top["top_servers"] == [
        {"value": "docs.example.com", "count": 4},
        {"value": "wiki.example.com", "count": 2},
    ]
    assert top["top_rules"] == [{"value": "outbound-web", "count": 6}]
    assert top["top_decryption_rules"] == [{"value": "decrypt-outbound", "count": 6}]
    assert top["top_sources"] == [{"value": "192.0.2.10", "count": 6}]
    assert "Forward Trust" in top["remediation"]
    assert top["references"]
    # a TRAFFIC-only failure reports its destination as the server
    assert causes["unsupported-parameter"]["top_servers"] == [{"value": "203.0.113.20", "count": 1}]


def test_report_span_timeline_and_json():
    report = analyze_records(records())
    assert report["span"] == {
        "start": T0.isoformat(),
        "end": (T0 + timedelta(minutes=59, seconds=2)).isoformat(),
    }
    timeline = report["timeline"]
    assert timeline["bucket_s"] == 60
    assert len(timeline["buckets"]) == 60
    assert sum(timeline["series"]["client-rejected-firewall-cert"]) == 6
    assert timeline["series"]["server-cert-expired"][30] == 1
    assert orjson.loads(orjson.dumps(report)) == report


def test_sessions_reused_after_the_window_count_twice():
    again = [
        dec(1, 0, UNKNOWN_CA, "a.example.com"),
        dec(1, 30, UNKNOWN_CA, "a.example.com", seqno=99),
    ]
    report = analyze_records(again, window_s=120)
    assert report["failures"]["sessions"] == 2


def test_parse_errors_and_empty_report():
    chain = Chain(ChainConfig(event_time=True))
    sessions = Sessions()
    analyzer = Analyzer(chain.classifier.catalogue, sessions)
    line = (
        b"1,2026/11/20 10:00:02,012801096514,TRAFFIC,end,2562,2026/11/20 10:00:02,192.0.2.10,"
        b"203.0.113.20,0.0.0.0,0.0.0.0,outbound-web,,,ssl,vsys1,trust,untrust,e1/1,e1/2,fwd,"
        b"2026/11/20 10:00:02,1,1,50000,443,0,0,0x0,tcp,allow,100,50,50,2,2026/11/20 10:00:00,"
        b"1,any,,5001,0x0,10.0.0.0-10.255.255.255,United States,,1,1,tcp-fin"
    )
    analyzer.add(run_all(chain, [Message(b"not a log"), Message(line)], sessions))
    report = analyzer.report()
    assert report["parse_errors"] == {"not_panos": 1}
    assert report["records"] == 1
    assert report["failures"] == {"sessions": 0, "events": 0}
    assert report["causes"] == [] and report["timeline"]["buckets"] == []


def test_long_spans_use_coarse_buckets():
    far = [
        dec(1, 0, UNKNOWN_CA, "a.example.com"),
        dec(2, 60 * 24 * 2000, UNKNOWN_CA, "a.example.com"),
    ]
    report = analyze_records(far)
    assert len(report["timeline"]["buckets"]) <= 72
