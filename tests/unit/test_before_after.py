"""analyze's change points, coverage and certificates: failures before and after each change of
a firewall, flagged when a cause appeared or grew; TLS sessions decrypted or not; certificates
close to expiry. On composed records, and on the demo traffic with expectations read from its
labelled lines."""

from __future__ import annotations

import csv
import re
from datetime import UTC, datetime, timedelta

import pytest

from pipeline import changes
from pipeline.chain import Chain, ChainConfig, Message, run_all
from pipeline.commands import analyze
from pipeline.commands.demo import SAMPLE
from pipeline.correlate import Sessions
from pipeline.regression import APPEARED, GREW, Criteria, verdict
from pipeline.report.aggregate import Analyzer
from pipeline.report.before_after import merge
from pipeline.report.html import render_html
from pipeline.report.text import render_text
from pipeline.settings import Settings

T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
SERIAL = "012801096530"


def test_verdicts() -> None:
    criteria = Criteria(factor=2.0, min_failures=5)
    assert verdict(0, 0.0, 5, 5.0, criteria) == APPEARED
    assert verdict(0, 0.0, 4, 4.0, criteria) is None  # too few after
    assert verdict(3, 1.0, 6, 2.0, criteria) == GREW  # exactly the factor
    assert verdict(3, 1.0, 6, 1.99, criteria) is None
    assert verdict(10, 5.0, 9, 1.0, criteria) is None  # fell


def point(minute: int, kind: str = "commit", serial: str = SERIAL) -> changes.ChangePoint:
    when = T0 + timedelta(minutes=minute)
    return changes.ChangePoint(
        f"{serial}:{kind}:{minute}", kind, "configuration", serial, "", when, kind, "r", "e",
        version_from=f"v{minute}", version_to=f"w{minute}",
    )  # fmt: skip


def test_changes_of_one_kind_close_together_are_one_at_the_last_time() -> None:
    merged = merge([point(0), point(3), point(20), point(4, "content"), point(2, serial="X")], 300)
    summary = [(p.firewall, p.kind, p.time.minute, n, p.version_from) for p, n in merged]
    assert summary == [
        ("X", "commit", 2, 1, "v2"),
        (SERIAL, "commit", 3, 2, "v0"),  # the first one's "from", the last one's time
        (SERIAL, "content", 4, 1, "v4"),
        (SERIAL, "commit", 20, 1, "v20"),
    ]


def decryption(sid: int, minute: float, *, failed: bool = False, version: str = "2561") -> dict:
    record = {
        "type": "DECRYPTION",
        "serial": SERIAL,
        "device_name": "fw-dmz-01",
        "config_ver": version,
        "sessionid": sid,
        "seqno": 9000 + sid,
        "time_generated": T0 + timedelta(minutes=minute),
        "proxy_type": "Inbound",
        "src": "203.0.113.51",
        "dst": "198.51.100.80",
        "rule": "inbound-portal",
        "from": "untrust",
        "to": "dmz",
        "app": "ssl",
    }
    if failed:
        # Inbound handshake that failed with Error Index Unknown (golden case
        # inbound-proxy-handshake-failure-index)
        record.update(err_index="Unknown", hs_stage_c2f="Certificate", hs_stage_f2s="Finished")
    else:
        record.update(err_index="None", hs_stage_c2f="Finished", tls_version="TLS1.2")
    return record


def report_of(records: list[dict], **analyzer) -> dict:
    chain = Chain(ChainConfig(event_time=True), parse=dict)
    sessions = Sessions(120.0)
    report = Analyzer(chain.classifier.catalogue, sessions, **analyzer)
    versions: dict = {}
    result = run_all(chain, [Message(r) for r in records], sessions, 0.0, versions)
    report.add(result)
    return report.report()


def test_a_cause_that_appears_after_an_upgrade_is_flagged() -> None:
    # 20 sessions in the hour before the upgrade (10.1), none failing; after it (10.2) 10
    # sessions, 6 failing
    before = [decryption(i, 2 + i * 3) for i in range(20)]
    after = [decryption(100 + i, 61 + i * 2, version="2562", failed=i < 6) for i in range(10)]
    report = report_of(before + after)
    [software] = report["changes"]["points"]
    assert (software["kind"], software["from"], software["to"]) == ("software", "10.1", "10.2")
    assert software["basis"] == "share"
    assert software["before"]["tls_sessions"] == 20 and software["before"]["failures"] == 0
    assert software["after"]["tls_sessions"] == 10 and software["after"]["failures"] == 6
    [cause] = software["causes"]
    assert cause["cause"] == "inbound-proxy-handshake-failure"
    assert cause["flag"] == APPEARED
    assert cause["after"]["share"] == pytest.approx(0.6)
    assert software["flagged"] == ["inbound-proxy-handshake-failure"]


def test_growth_by_the_factor_is_flagged_and_less_is_not() -> None:
    declared = tuple(changes.declared([f"{(T0 + timedelta(minutes=60)).isoformat()},{SERIAL}"]))

    def run(after_failures: int) -> dict:
        # before: 2 failures in 20 sessions (10%); after: after_failures in 20
        before = [decryption(i, i * 3, failed=i < 2) for i in range(20)]
        after = [decryption(100 + i, 61 + i * 2, failed=i < after_failures) for i in range(20)]
        return report_of(before + after, declared_changes=declared)["changes"]["points"][0]

    grown = run(5)  # 25%: 2.5 times the share before
    assert grown["declared"] is True
    assert [(c["flag"], c["growth"]) for c in grown["causes"]] == [(GREW, pytest.approx(2.5))]
    same = run(3)  # 15%: 1.5 times
    assert [c["flag"] for c in same["causes"]] == [None]


def test_no_logs_before_a_change_means_nothing_to_compare() -> None:
    declared = tuple(changes.declared([f"{T0.isoformat()},{SERIAL}"]))
    records = [decryption(i, 1 + i, failed=True) for i in range(8)]
    [only] = report_of(records, declared_changes=declared)["changes"]["points"]
    assert only["before"]["covered_s"] == 0
    assert [c["flag"] for c in only["causes"]] == [None]


def test_a_change_declared_for_every_firewall_is_compared_on_each() -> None:
    declared = tuple(changes.declared([(T0 + timedelta(minutes=30)).isoformat()]))
    other = dict(decryption(500, 10), serial="012801096531", device_name="fw-dmz-02")
    points = report_of([decryption(1, 10), other], declared_changes=declared)["changes"]["points"]
    assert sorted(p["serial"] for p in points) == [SERIAL, "012801096531"]
    assert {p["firewall"] for p in points} == {f"fw-dmz-01 ({SERIAL})", "fw-dmz-02 (012801096531)"}


# --- the demo traffic ---------------------------------------------------------------------------

LABEL = re.compile(r"# ([a-z0-9.-]+): (.+)")


def demo_blocks() -> dict[str, list[list[str]]]:
    """Label -> the CSV columns of each line of that labelled block of the demo traffic."""
    blocks: dict[str, list[list[str]]] = {}
    current = None
    for line in SAMPLE.read_text(encoding="utf-8").splitlines():
        found = LABEL.fullmatch(line)
        if line.startswith("#"):
            current = found.group(1) if found else None
            continue
        if current and line.strip():
            body = line[line.index(" 1,") + 1 :]
            blocks.setdefault(current, []).append(next(csv.reader([body])))
    return blocks


@pytest.fixture(scope="module")
def demo_report() -> dict:
    return analyze.build([str(SAMPLE)], Settings())


def test_the_demo_shows_the_upgrade_and_the_regression_after_it(demo_report: dict) -> None:
    blocks = demo_blocks()
    failures = blocks["change-regression"]
    serial = failures[0][2]
    assert {row[5] for row in failures} == {"2562"}  # after the upgrade
    assert {row[5] for row in blocks["change-before-upgrade"]} == {"2561"}
    points = [p for p in demo_report["changes"]["points"] if p["serial"] == serial]
    software = next(p for p in points if p["kind"] == "software")
    assert (software["from"], software["to"]) == ("10.1", "10.2")
    flagged = {c["cause"]: c for c in software["causes"] if c["flag"]}
    assert set(flagged) == {"inbound-proxy-handshake-failure"}
    assert flagged["inbound-proxy-handshake-failure"]["after"]["failures"] == len(failures)
    assert flagged["inbound-proxy-handshake-failure"]["flag"] == APPEARED
    content = [p for p in points if p["kind"] == "content"]
    assert content and not any(c["flag"] for p in content for c in p["causes"])


def test_the_demo_shows_coverage_and_the_inbound_certificate_close_to_expiry(
    demo_report: dict,
) -> None:
    # the demo's change-point block (its labels start with "change-")
    rows = [
        row
        for label, block in demo_blocks().items()
        if label.startswith("change-")
        for row in block
    ]
    undecrypted = [
        r for r in rows if r[3] == "TRAFFIC" and r[4] == "end" and not int(r[28], 16) & 0x01000000
    ]
    [plain] = undecrypted  # the block's one TLS session without the decrypted flag
    coverage = demo_report["coverage"]
    top = coverage["undecrypted_by_bytes"][0]
    assert (top["destination"], top["bytes"]) == (plain[8], int(plain[31]))
    assert coverage["not_decrypted"] >= 1 and 0 < coverage["share_decrypted"] < 1
    inbound = [r for r in rows if r[3] == "DECRYPTION" and r[48] == "Inbound"]
    not_after = datetime.strptime(inbound[0][52], "%Y/%m/%d %H:%M:%S").replace(tzinfo=UTC)
    last_seen = max(datetime.fromisoformat(r[72]) for r in inbound if r[50] == inbound[0][50])
    [cert] = [c for c in demo_report["certificates"]["expiring"] if c["subject"] == inbound[0][60]]
    assert cert["role"] == "inbound-inspection"
    assert cert["days_left"] == round((not_after - last_seen).total_seconds() / 86400, 1)
    assert cert["sessions"] == len({r[22] for r in inbound if r[50] == inbound[0][50]})
    assert cert["bucket"] == "0-7"


def test_the_text_and_html_reports_show_the_sections(demo_report: dict) -> None:
    text = render_text(demo_report)
    for heading in ("Change points", "Decryption coverage", "Certificates that expire"):
        assert heading in text
    assert "APPEARED" in text
    page = render_html(demo_report)
    for anchor in ('id="changes"', 'id="coverage"', 'id="certificates"'):
        assert anchor in page
