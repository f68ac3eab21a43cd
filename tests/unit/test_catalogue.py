"""The cause catalogue: the built-in one loads; every mistake is a ConfigError naming the file,
the line and the cause."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pipeline.diagnosis import classifier_for, load_catalogue
from pipeline.diagnosis.catalogue import DEFAULT_PATH, layout_fields
from pipeline.errors import ConfigError

REQUIRED = {
    "server-cert-expired": "server-certificate",
    "server-cert-untrusted-issuer": "server-certificate",
    "server-cert-chain-incomplete": "server-certificate",
    "server-cert-revocation-check-failed": "server-certificate",
    "server-cert-revoked": "server-certificate",
    "server-cert-invalid": "server-certificate",
    "client-cert-auth-required": "client-authentication",
    "client-rejected-firewall-cert": "client-trust",
    "unsupported-cipher": "unsupported-parameter",
    "unsupported-ec-curve": "unsupported-parameter",
    "unsupported-tls-version": "unsupported-parameter",
    "unsupported-feature": "unsupported-parameter",
    "unsupported-parameter": "unsupported-parameter",
    "tls-protocol-error": "protocol",
    "decryption-resources-unavailable": "resources",
    "hsm-unavailable": "resources",
    "inbound-proxy-handshake-failure": "inbound-inspection",
    "decrypt-error": "unknown",
    "unknown": "unknown",
}

HEAD = """
schema = 1
categories = ["server-certificate", "unknown"]
modes = ["forward-proxy", "unknown"]

[precedence]
error_text = 500
end_reason = 200

[[mode_rules]]
mode = "forward-proxy"
when = [{ field = "proxy_type", equals = "Forward" }]
"""

GOOD_CAUSE = """
[[causes]]
id = "server-cert-expired"
category = "server-certificate"
title = "Expired"
remediation = "Renew it."
references = ["https://docs.paloaltonetworks.com/"]

[[causes.rules]]
level = "error_text"
confidence = 0.9
when = [{ field = "error", regex = "(?i)CertificateExpired" }]
"""


def write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "causes.toml"
    path.write_text(HEAD + body, encoding="utf-8")
    return path


def line_of(path: Path, needle: str, nth: int = 1) -> int:
    seen = 0
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if needle in line:
            seen += 1
            if seen == nth:
                return number
    raise AssertionError(needle)


def test_builtin_catalogue_loads_with_the_required_causes():
    catalogue = load_catalogue()
    assert catalogue.path == DEFAULT_PATH
    for cause, category in REQUIRED.items():
        assert catalogue.causes[cause].category == category
    assert set(catalogue.modes) == {
        "forward-proxy",
        "inbound-inspection",
        "globalprotect",
        "no-decrypt",
        "unknown",
    }
    # best first: ranks never increase along the compiled rule list
    ranks = [r.rank for r in catalogue.rules]
    assert ranks == sorted(ranks, reverse=True)


def test_builtin_catalogue_names_its_sources():
    head = DEFAULT_PATH.read_text(encoding="utf-8").split("schema = 1")[0]
    assert "kA10g000000Cm5iCAC" in head and "docs" in head


def test_rule_fields_exist_in_the_layouts():
    fields = layout_fields()
    for name in ("err_index", "error", "session_end_reason", "tracker_stage_firewall", "notafter"):
        assert name in fields


def test_minimal_catalogue_loads(tmp_path):
    catalogue = load_catalogue(write(tmp_path, GOOD_CAUSE))
    assert list(catalogue.causes) == ["server-cert-expired"]


def test_adding_a_cause_needs_no_code(tmp_path):
    extra = GOOD_CAUSE.replace("server-cert-expired", "my-new-cause").replace(
        "(?i)CertificateExpired", "(?i)my vendor text"
    )
    path = write(tmp_path, GOOD_CAUSE + extra)
    classifier = classifier_for(str(path))
    diagnosis = classifier.classify({"type": "DECRYPTION", "error": "oops: My Vendor Text"})
    assert diagnosis.cause == "my-new-cause"
    assert diagnosis.mode == "unknown"


@pytest.mark.parametrize(
    ("body", "needle", "message"),
    [
        (
            GOOD_CAUSE.replace('category = "server-certificate"', 'category = "nope"'),
            'id = "server-cert-expired"',
            "unknown category 'nope'",
        ),
        (GOOD_CAUSE + GOOD_CAUSE, 'id = "server-cert-expired"', "duplicate id"),
        (
            GOOD_CAUSE.replace('field = "error"', 'field = "no_such_column"'),
            "[[causes.rules]]",
            "unknown record field 'no_such_column'",
        ),
        (
            GOOD_CAUSE.replace('"(?i)CertificateExpired"', '"(unclosed"'),
            "[[causes.rules]]",
            "bad regex",
        ),
        (
            GOOD_CAUSE.replace('level = "error_text"', 'level = "vibes"'),
            "[[causes.rules]]",
            "level 'vibes' is not in [precedence]",
        ),
        (
            GOOD_CAUSE.replace("confidence = 0.9", "confidence = 1.5"),
            "[[causes.rules]]",
            "'confidence' must be a number from 0 to 1",
        ),
        (
            GOOD_CAUSE.replace('regex = "(?i)CertificateExpired"', 'smells = "x"'),
            "[[causes.rules]]",
            "unknown condition key",
        ),
        (
            GOOD_CAUSE.replace(
                'references = ["https://docs.paloaltonetworks.com/"]', "references = []"
            ),
            'id = "server-cert-expired"',
            "'references'",
        ),
        (
            GOOD_CAUSE.replace('remediation = "Renew it."', 'remediation = ""'),
            'id = "server-cert-expired"',
            "'remediation' must be non-empty",
        ),
        (
            GOOD_CAUSE.replace('field = "error", regex', 'field = "error", equals = "x", regex'),
            "[[causes.rules]]",
            "needs exactly one test",
        ),
        (
            GOOD_CAUSE.replace("when = [{", 'when = [{ use = "decrypted" }, {'),
            "[[causes.rules]]",
            "unknown named condition 'decrypted'",
        ),
    ],
    ids=[
        "category",
        "duplicate",
        "field",
        "regex",
        "level",
        "confidence",
        "condition-key",
        "references",
        "remediation",
        "two-tests",
        "named-condition",
    ],
)
def test_validation_errors_name_file_line_and_cause(tmp_path, body, needle, message):
    path = write(tmp_path, body)
    with pytest.raises(ConfigError) as info:
        load_catalogue(path)
    text = info.value.message
    nth = 2 if "duplicate" in message else 1
    assert text.startswith(f"{path}:{line_of(path, needle, nth)}: "), text
    assert "server-cert-expired" in text
    assert message in text


def test_unknown_field_in_a_time_comparison(tmp_path):
    body = GOOD_CAUSE.replace(
        'when = [{ field = "error", regex = "(?i)CertificateExpired" }]',
        'when = [{ field = "notafter", before_field = "time_of_day" }]',
    )
    with pytest.raises(ConfigError, match=re.escape("unknown record field 'time_of_day'")):
        load_catalogue(write(tmp_path, body))


def test_bad_mode_rule(tmp_path):
    path = write(tmp_path, GOOD_CAUSE)
    path.write_text(path.read_text().replace('mode = "forward-proxy"', 'mode = "sideways"'))
    with pytest.raises(ConfigError) as info:
        load_catalogue(path)
    assert info.value.message.startswith(f"{path}:{line_of(path, '[[mode_rules]]')}: ")
    assert "sideways" in info.value.message


NAMED = """
[conditions]
decrypted = [{ field = "flags", bits_set = 0x01000000 }]
"""

MODE_EVENT = """
[[mode_events]]
when = [{ field = "type", equals = "TRAFFIC" }, { use = "decrypted" }]
"""


def test_named_conditions_and_mode_events(tmp_path):
    head = HEAD.replace("[[mode_rules]]", NAMED + "\n[[mode_rules]]")
    path = tmp_path / "causes.toml"
    path.write_text(head + MODE_EVENT + GOOD_CAUSE, encoding="utf-8")
    classifier = classifier_for(str(path))
    [event] = classifier.catalogue.mode_events
    assert [(c.field, c.kind, c.arg) for c in event.conditions] == [
        ("type", "equals", "TRAFFIC"),
        ("flags", "bits_set", 0x01000000),
    ]
    assert classifier.event_mode({"type": "TRAFFIC", "flags": 0x01000019}) == "unknown"
    assert classifier.event_mode({"type": "TRAFFIC", "flags": 0x19}) is None
    assert classifier.event_mode({"type": "DECRYPTION", "proxy_type": "Forward"}) is None


def test_a_mode_event_error_names_its_line(tmp_path):
    path = tmp_path / "causes.toml"
    path.write_text(HEAD + MODE_EVENT + GOOD_CAUSE, encoding="utf-8")  # no [conditions]
    with pytest.raises(ConfigError) as info:
        load_catalogue(path)
    assert info.value.message.startswith(f"{path}:{line_of(path, '[[mode_events]]')}: ")
    assert "unknown named condition 'decrypted'" in info.value.message


def test_toml_syntax_error_names_the_file_and_line(tmp_path):
    path = write(tmp_path, GOOD_CAUSE + "\n[[causes]\n")
    with pytest.raises(ConfigError) as info:
        load_catalogue(path)
    assert str(path) in info.value.message and "line" in info.value.message


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="cannot read the cause catalogue"):
        load_catalogue(tmp_path / "absent.toml")


@pytest.mark.parametrize(
    ("spec", "record", "holds"),
    [
        ({"field": "proxy_type", "equals": "no decrypt"}, {"proxy_type": "No Decrypt"}, True),
        ({"field": "proxy_type", "in": ["Forward", "Inbound"]}, {"proxy_type": "inbound"}, True),
        (
            {"field": "error", "prefix": "general tls"},
            {"error": "General TLS protocol error."},
            True,
        ),
        ({"field": "error", "contains": "alert"}, {"error": "no"}, False),
        ({"field": "error", "regex": "Unknown(CA)?$"}, {"error": "fatal UnknownCA"}, True),
        ({"field": "error", "exists": True}, {"error": ""}, False),
        ({"field": "error", "exists": False}, {}, True),
        ({"field": "flags", "bits_set": 0x01000000}, {"flags": 0x1400019}, True),
        ({"field": "flags", "bits_set": 0x01000000}, {"flags": 0x400019}, False),
        ({"field": "flags", "bits_set": 0x01000000}, {"flags": "0x1400019"}, False),
        ({"field": "err_index", "in": ["None"], "negate": True}, {"err_index": "Cipher"}, True),
        ({"field": "err_index", "in": ["None"], "negate": True}, {}, False),
        (
            {"field": "notafter", "before_field": "time_generated"},
            {"notafter": 5, "time_generated": 9},
            True,
        ),
        (
            {"field": "notafter", "after_field": "time_generated"},
            {"notafter": 5, "time_generated": 9},
            False,
        ),
        (
            {"field": "notafter", "before_field": "time_generated"},
            {"notafter": "x", "time_generated": 9},
            False,
        ),
        (
            {"field": "err_index", "equals": "Cipher", "source": "DECRYPTION"},
            {"type": "TRAFFIC", "err_index": "Cipher"},
            False,
        ),
    ],
)
def test_condition_tests(spec, record, holds):
    from pipeline.diagnosis.rules import compile_condition

    assert (compile_condition(spec, None).holds(record, ()) is not None) is holds


def test_condition_looks_into_related_records_of_the_right_type():
    from pipeline.diagnosis.rules import compile_condition

    cond = compile_condition({"field": "err_index", "equals": "Cipher"}, "DECRYPTION")
    related = [
        {"type": "SESSION", "err_index": "Cipher"},
        {"type": "DECRYPTION", "err_index": "Cipher"},
    ]
    assert cond.holds({"type": "TRAFFIC"}, related) == ("Cipher", "DECRYPTION")
    assert cond.holds({"type": "TRAFFIC"}, related[:1]) is None
