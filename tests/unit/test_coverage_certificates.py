"""Decryption coverage (pipeline.coverage) and certificates that will break decryption
(pipeline.certificates): which records say a TLS session was decrypted, how the chain marks and
counts them, days left and their buckets, the registry behind the metric."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from pipeline import certificates, coverage
from pipeline.chain import Chain, ChainConfig, Message
from pipeline.panos import parse_line
from pipeline.settings import Settings

DIAGNOSIS = Path(__file__).resolve().parents[1] / "golden" / "diagnosis"
WHEN = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)


def golden(name: str) -> str:
    text = (DIAGNOSIS / f"{name}.log").read_text()
    return next(line for line in text.splitlines() if line and not line.startswith("#"))


def traffic(**values) -> dict:
    record = {"type": "TRAFFIC", "subtype": "end", "proto": "tcp", "dport": 443, "app": "ssl"}
    record.update(values)
    return record


# --- coverage ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        # Flags bit 0x01000000: "SSL session is decrypted (SSL Proxy)"
        (traffic(flags=0x1400019), True),
        (traffic(flags=0x400019), False),  # ssl, not decrypted
        (traffic(flags=0x19, app="web-browsing"), False),  # TLS's port
        (traffic(flags=0x19, app="web-browsing", proto="udp"), None),  # QUIC is not decryptable
        (traffic(flags=0x19, app="dns", dport=53, proto="udp"), None),  # not TLS
        (traffic(flags=0x1400019, subtype="start"), None),  # not a session end
        ({"type": "DECRYPTION", "proxy_type": "No Decrypt"}, False),
        ({"type": "DECRYPTION", "proxy_type": "Forward"}, True),
        ({"type": "DECRYPTION", "proxy_type": "Inbound"}, True),
        ({"type": "DECRYPTION", "proxy_type": "Forward", "error": "Received fatal alert"}, None),
        ({"type": "SYSTEM"}, None),
    ],
)
def test_which_records_say_whether_tls_was_decrypted(record: dict, expected: bool | None) -> None:
    assert coverage.decrypted(record) is expected


def test_a_failed_handshake_is_not_coverage() -> None:
    assert coverage.decrypted(traffic(flags=0x1400019), failed=True) is None


def test_the_chain_marks_and_counts_tls_sessions_per_firewall() -> None:
    lines = [golden("none-tcp-fin"), golden("none-no-decrypt"), golden("none-aged-out")]
    result = Chain(ChainConfig(event_time=True)).run([Message(x) for x in lines], {}, 0.0)
    marks = [orjson.loads(d.source)["decryptscope"].get("decrypted") for d in result.documents]
    records = [parse_line(x) for x in lines]
    expected = [coverage.decrypted(r) for r in records]
    assert marks == expected
    assert expected[:2] == [True, False]  # the golden cases: decrypted tcp-fin, No Decrypt
    counted = result.counts.tls_sessions
    assert counted[("TRAFFIC", "unknown", True, "012801096514")] >= 1
    assert counted[("DECRYPTION", "no-decrypt", False, "012801096514")] == 1
    # a failure's documents carry no coverage and are not counted
    failed = Chain(ChainConfig(event_time=True)).run(
        [Message(golden("server-cert-expired"))], {}, 0.0
    )
    assert "decrypted" not in orjson.loads(failed.documents[0].source)["decryptscope"]
    assert not failed.counts.tls_sessions


# --- certificates ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("days", "bucket"),
    [(-0.1, "expired"), (0.0, "0-7"), (6.99, "0-7"), (7.0, "7-30"), (29.9, "7-30"), (30, "30-90"),
     (90, "90+"), (400, "90+")],
)  # fmt: skip
def test_days_left_buckets(days: float, bucket: str) -> None:
    assert certificates.bucket(days) == bucket


def test_a_sighting_counts_days_left_from_the_log_time() -> None:
    record = parse_line(golden("none-successful-handshake"))
    seen = certificates.sighting(record, "forward-proxy")
    assert seen is not None
    # the golden line: generated 2026/11/20 10:15:02 (+120 ms), Not After 2027/01/10 00:00:00
    expected = datetime(2027, 1, 10, tzinfo=UTC) - datetime(2026, 11, 20, 10, 15, 2, 120000, UTC)
    assert seen.days_left == pytest.approx(expected.total_seconds() / 86400)
    assert seen.subject == "www.example.com" and seen.server == "www.example.com"
    assert seen.role == "forward-proxy"
    assert seen.key == record["fingerprint"].lower()
    assert certificates.sighting({"type": "DECRYPTION"}, "forward-proxy") is None


def sighting(key: str, role: str, days_left: float) -> certificates.Sighting:
    return certificates.Sighting(
        key, role, key, "CA", "01", WHEN + timedelta(days=days_left), WHEN, days_left, "s", "f", ""
    )


def test_the_registry_counts_per_role_and_bucket_as_wall_time_passes() -> None:
    registry = certificates.Registry(max_entries=3)
    wall = 1_000_000.0
    registry.add(sighting("a", "inbound-inspection", 8.5), wall)
    registry.add(sighting("b", "forward-proxy", 40), wall)
    registry.add(sighting("a", "inbound-inspection", 8.5), wall)  # seen again: one certificate
    assert registry.counts(wall) == {
        ("inbound-inspection", "7-30"): 1,
        ("forward-proxy", "30-90"): 1,
    }
    two_days = wall + 2 * 86400
    assert registry.counts(two_days)[("inbound-inspection", "0-7")] == 1
    registry.add_expired("fw:portal", wall)
    registry.add(sighting("c", "forward-proxy", 1), wall)
    assert len(registry) == 3  # the longest unseen ("a" was re-added after "b") goes first
    assert ("forward-proxy", "30-90") not in registry.counts(wall)
    declared = (certificates.Declared("forward-trust", "FT", datetime.fromtimestamp(wall, UTC)),)
    assert registry.counts(wall + 1, declared)[("forward-trust", "expired")] == 1
    assert registry.counts(wall)[("firewall", "0-7")] == 1  # at its expiry time
    assert registry.counts(wall + 1)[("firewall", "expired")] == 1


def test_declared_certificates_from_the_settings() -> None:
    settings = Settings(
        forward_trust_ca="Corp Forward Trust",
        forward_trust_ca_not_after="2026-12-01T00:00:00Z",
        forward_untrust_ca_not_after="2027-06-01",
    )
    trust, untrust = certificates.declared(settings)
    assert (trust.role, trust.name) == ("forward-trust", "Corp Forward Trust")
    assert trust.not_after == datetime(2026, 12, 1, tzinfo=UTC)
    assert (untrust.role, untrust.name) == ("forward-untrust", "forward-untrust")
    assert certificates.declared(Settings()) == ()
