"""classify(): hand-written records with the parser contract's keys -> causes and modes."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

from pipeline.diagnosis import Diagnosis, classifier_for, classify, event_mode

T0 = datetime(2026, 11, 20, 10, 15, 2, tzinfo=UTC)


def dec(**fields):
    base = {
        "type": "DECRYPTION",
        "serial": "012801096514",
        "sessionid": 4242,
        "time_generated": T0,
        "proxy_type": "Forward",
        "err_index": "Certificate",
        "root_status": "trusted",
        "chain_status": "Trusted",
        "notafter": datetime(2027, 1, 10, tzinfo=UTC),
        "sni": "www.example.com",
    }
    base.update(fields)
    return {k: v for k, v in base.items() if v is not None}


def traffic(reason, **fields):
    base = {
        "type": "TRAFFIC",
        "subtype": "end",
        "serial": "012801096514",
        "sessionid": 4242,
        "time_generated": T0,
        "app": "ssl",
        "flags": 0x1400019,
        "session_end_reason": reason,
    }
    base.update(fields)
    return base


CASES = [
    (dec(error="Received fatal alert CertificateExpired from client"), "server-cert-expired"),
    (dec(notafter=datetime(2026, 10, 1, tzinfo=UTC)), "server-cert-expired"),
    (dec(notafter=datetime(2026, 10, 1, tzinfo=UTC).timestamp()), "server-cert-expired"),
    (dec(root_status="untrusted", chain_status="Untrusted"), "server-cert-untrusted-issuer"),
    (dec(root_status="untrusted", chain_status="Incomplete"), "server-cert-chain-incomplete"),
    (dec(error="OCSP responder timed out"), "server-cert-revocation-check-failed"),
    (dec(error="Received fatal alert CertificateRevoked from client"), "server-cert-revoked"),
    (dec(), "server-cert-invalid"),
    (traffic("decrypt-cert-validation"), "server-cert-invalid"),
    (
        dec(error="Received fatal alert CertificateRequired from server"),
        "client-cert-auth-required",
    ),
    (dec(error="Received fatal alert UnknownCA from client"), "client-rejected-firewall-cert"),
    (
        dec(
            proxy_type="GlobalProtect", error="Received fatal alert CertificateUnknown from client"
        ),
        "globalprotect-client-untrusted-cert",
    ),
    (
        dec(sni="gateway.icloud.com", error="Received fatal alert CertificateUnknown from client"),
        "certificate-pinning",
    ),
    (
        dec(proxy_type="Inbound", error="Received fatal alert BadCertificate from client"),
        "inbound-client-rejected-cert",
    ),
    (dec(err_index="Cipher"), "unsupported-cipher"),
    (dec(err_index="Unknown", error="unsupported curve x448"), "unsupported-ec-curve"),
    (dec(err_index="Version"), "unsupported-tls-version"),
    (dec(err_index="Feature"), "unsupported-feature"),
    (traffic("decrypt-unsupport-param"), "unsupported-parameter"),
    (
        dec(err_index="Unknown", error="Received fatal alert HandshakeFailure from server"),
        "unsupported-parameter",
    ),
    (
        dec(
            err_index="Protocol",
            error="General TLS protocol error. Received fatal alert DecodeError from server",
        ),
        "tls-protocol-error",
    ),
    (dec(err_index="Protocol"), "tls-protocol-error"),
    (dec(err_index="Resource"), "decryption-resources-unavailable"),
    (traffic("resources-unavailable"), "decryption-resources-unavailable"),
    (dec(err_index="HSM"), "hsm-unavailable"),
    (
        {
            "type": "SESSION",
            "sessionid": 318075,
            "tracker_stage_firewall": "proxy decrypt failure",
            "tracker_stage_l7proc": "ctd proc changed",
            "session_end_reason": "policy-deny",
        },
        "inbound-proxy-handshake-failure",
    ),
    (dec(proxy_type="Inbound", err_index="Unknown"), "inbound-proxy-handshake-failure"),
    (traffic("decrypt-error"), "decrypt-error"),
    (dec(err_index="Unknown", error="something new"), "unknown"),
    (dec(err_index="Unknown"), "unknown"),
]


@pytest.mark.parametrize(("record", "cause"), CASES, ids=[c for _, c in CASES])
def test_cause(record, cause):
    diagnosis = classify(record)
    assert diagnosis is not None
    assert diagnosis.cause == cause
    assert diagnosis.category == classifier_for(None).catalogue.causes[cause].category


NOT_FAILURES = [
    dec(
        proxy_type="No Decrypt",
        err_index="None",
        root_status="uninspected",
        chain_status="Uninspected",
        error="",
    ),
    dec(err_index="None", error=""),
    dec(err_index=None, error=None),
    traffic("tcp-fin"),
    traffic("aged-out"),
    traffic("tcp-rst-from-client"),
    traffic("decoder"),
    traffic("policy-deny", subtype="drop", action="deny", app="not-applicable", flags=0),
    traffic("resources-unavailable", flags=0x400000),  # not a decrypted session
    {
        "type": "SESSION",
        "sessionid": 7,
        "tracker_stage_firewall": "appid policy lookup deny",
        "session_end_reason": "policy-deny",
    },
    {
        "type": "SESSION",
        "sessionid": 8,
        "tracker_stage_firewall": "Aged out",
        "session_end_reason": "aged-out",
    },
    {"type": "SYSTEM", "subtype": "general", "opaque": "HSM client connected"},
    {"type": "THREAT", "subtype": "url", "app": "ssl"},
    {},
]


@pytest.mark.parametrize("record", NOT_FAILURES)
def test_not_a_failure(record):
    assert classify(record) is None


def test_policy_deny_takes_the_decryption_cause_of_the_session():
    deny = traffic("policy-deny", app="smtp")
    inbound = dec(proxy_type="Inbound", err_index="Cipher")
    diagnosis = classify(deny, [inbound])
    assert diagnosis.cause == "unsupported-cipher"
    assert diagnosis.mode == "inbound-inspection"
    assert {"field": "err_index", "value": "Cipher", "source": "DECRYPTION"} in diagnosis.evidence


def test_generic_end_reason_takes_the_specific_cause():
    diagnosis = classify(
        traffic("decrypt-error"), [dec(error="Received fatal alert UnknownCA from client")]
    )
    assert diagnosis.cause == "client-rejected-firewall-cert"
    assert diagnosis.evidence[0]["source"] == "DECRYPTION"


def test_error_text_beats_error_index_and_end_reason():
    record = dec(
        err_index="Certificate", error="Received fatal alert CertificateExpired from client"
    )
    assert classify(record, [traffic("decrypt-error")]).cause == "server-cert-expired"


def test_source_restriction_ignores_other_log_types():
    # err_index rules are DECRYPTION-only: a TRAFFIC record carrying the key does not count.
    assert classify(traffic("tcp-fin", err_index="Cipher")) is None


@pytest.mark.parametrize(
    ("record", "mode"),
    [
        (dec(proxy_type="Forward"), "forward-proxy"),
        (dec(proxy_type="GlobalProtect"), "globalprotect"),
        (dec(proxy_type="Inbound Inspection"), "inbound-inspection"),
        (dec(proxy_type="No Decrypt", err_index="Cipher"), "no-decrypt"),
        (dec(proxy_type=None), "unknown"),
        (traffic("decrypt-error"), "unknown"),
        (
            {"type": "SESSION", "tracker_stage_firewall": "proxy decrypt failure"},
            "inbound-inspection",
        ),
    ],
)
def test_mode(record, mode):
    assert classify(record).mode == mode


SUCCESS = {"err_index": "None", "error": "", "root_status": "trusted"}


@pytest.mark.parametrize(
    ("record", "mode"),
    [
        (dec(proxy_type="Forward", **SUCCESS), "forward-proxy"),
        (dec(proxy_type="Inbound Inspection", **SUCCESS), "inbound-inspection"),
        (dec(proxy_type="GlobalProtect", **SUCCESS), "globalprotect"),
        (
            dec(proxy_type="No Decrypt", root_status="uninspected", err_index="None", error=""),
            "no-decrypt",
        ),
        # A TRAFFIC line does not name the proxy type; Flags bit 0x01000000 says it was decrypted.
        (traffic("tcp-fin", flags=0x01000000 | 0x19), "unknown"),
        (traffic("tcp-fin", flags=0x01400019), "unknown"),
        # Bit 0x400 is not "decrypted" (Elastic's label for it notwithstanding).
        (traffic("tcp-fin", flags=0x00400419), None),
        (traffic("tcp-fin", flags=0x19), None),
        (traffic("tcp-fin", subtype="start", flags=0x01000000), None),
        (traffic("tcp-fin", flags=None), None),
        ({"type": "THREAT", "subtype": "url", "app": "ssl", "flags": 0x01000000}, None),
        ({"type": "SESSION", "sessionid": 7, "session_end_reason": "tcp-fin"}, None),
        ({"type": "SYSTEM", "subtype": "general"}, None),
        ({}, None),
    ],
)
def test_every_decryption_event_has_a_mode(record, mode):
    assert classify(record) is None
    assert event_mode(record) == mode


def test_a_decrypted_traffic_end_takes_the_mode_of_its_decryption_record():
    end = traffic("tcp-fin")
    assert event_mode(end, [dec(proxy_type="Inbound Inspection", **SUCCESS)]) == (
        "inbound-inspection"
    )


def test_diagnosis_as_dict_is_the_contract_and_json_serialisable():
    diagnosis = classify(dec(notafter=datetime(2026, 10, 1, tzinfo=UTC)))
    data = diagnosis.as_dict()
    assert list(data) == [
        "cause",
        "category",
        "mode",
        "confidence",
        "evidence",
        "remediation",
        "references",
    ]
    assert isinstance(data["evidence"], list)
    assert isinstance(data["references"], list)
    assert 0.0 <= data["confidence"] <= 1.0
    assert data["remediation"]
    assert {
        "field": "notafter",
        "value": "2026-10-01T00:00:00+00:00",
        "source": "DECRYPTION",
    } in data["evidence"]
    assert orjson.loads(orjson.dumps(data)) == data
    assert Diagnosis.from_dict(data) == diagnosis


def test_remediation_names_where_to_look_in_panos():
    catalogue = classifier_for(None).catalogue
    for cause in catalogue.causes.values():
        assert cause.references and all(r.startswith("https://") for r in cause.references)
    assert "SSL Decryption Exclusion" in catalogue.causes["certificate-pinning"].remediation
    assert "Decryption Profile" in catalogue.causes["unsupported-tls-version"].remediation


def test_gates_only_skip_rules_that_cannot_hold():
    catalogue = classifier_for(None).catalogue
    records = [r for r, _ in CASES] + NOT_FAILURES
    for record in records:
        brute = next((r for r in catalogue.rules if r.match(record, ()) is not None), None)
        diagnosis = classify(record)
        assert (diagnosis.cause if diagnosis else None) == (brute.target if brute else None)


def test_a_remembered_verdict_is_the_verdict_of_the_record_itself():
    # Verdicts of records classified alone are remembered by the values the rules read: each
    # must equal a fresh classification, and other values must not be served an old verdict.
    from pipeline.diagnosis import load_catalogue
    from pipeline.diagnosis.classify import Classifier
    from pipeline.panos import parse_text

    golden = Path(__file__).resolve().parents[1] / "golden" / "diagnosis"
    records = [r for p in sorted(golden.glob("*.log")) for r in parse_text(p.read_text())]
    remembering = Classifier(load_catalogue())
    for _ in range(2):
        for record in records:
            fresh = Classifier(load_catalogue())._classify(record, ())
            assert remembering.classify(record) == fresh
            assert remembering.event_mode(record) == Classifier(load_catalogue())._event_mode(
                record, ()
            )
    failure = next(r for r in records if remembering.classify(r) is not None)
    changed = {**failure, "err_index": "None", "error": "", "session_end_reason": "tcp-fin"}
    assert remembering.classify(changed) == Classifier(load_catalogue())._classify(changed, ())


def test_records_that_share_a_verdict_by_outcome_keep_their_own_evidence():
    # The SNI and Not After enter the memory only as the outcome of the one test that reads
    # them: records that differ there share the rule, never another record's evidence.
    from datetime import timedelta

    from pipeline.diagnosis import load_catalogue
    from pipeline.diagnosis.classify import Classifier
    from pipeline.panos import parse_text

    golden = Path(__file__).resolve().parents[1] / "golden" / "diagnosis"
    records = [r for p in sorted(golden.glob("*.log")) for r in parse_text(p.read_text())]
    variants = []
    for record in records:
        for sni in ("api.dropbox.com", "www.icloud.com", "intranet.example.org", None):
            variants.append({**record, "sni": sni})
        when = record.get("time_generated")
        if when is not None:
            for days in (-400, 400):
                variants.append({**record, "notafter": when + timedelta(days=days)})
    remembering = Classifier(load_catalogue())
    causes = set()
    for variant in variants + variants[::-1]:
        fresh = Classifier(load_catalogue())._classify(variant, ())
        assert remembering.classify(variant) == fresh
        causes.add(fresh.cause if fresh else None)
    # the variants reach the verdicts the outcome keys stand for
    assert {"certificate-pinning", "server-cert-expired"} <= causes
