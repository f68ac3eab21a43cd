"""Recommendations (pipeline.recommend) on ECS documents written out by hand, the data file
against the cause catalogue, and the configuration output: ``set`` lines, and XML fragments
parsed back with pan-os-python into the objects they must be."""

from __future__ import annotations

import dataclasses
import random
import tomllib
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
from panos.device import SslDecrypt, SslDecryptExcludeCert
from panos.objects import CustomUrlCategory
from panos.policies import DecryptionRule

from pipeline import cli, recommend
from pipeline.commands import recommend as command
from pipeline.diagnosis.catalogue import load_catalogue
from pipeline.errors import ConfigError
from pipeline.recommend import Evidence, Gates
from pipeline.report.panos_config import Target, render_set, render_xml
from pipeline.resources import SCHEMAS
from pipeline.settings import Settings, load_settings

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = ROOT / "tests" / "golden" / "recommend"
START = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
DATA = tomllib.loads((SCHEMAS / "recommendations.toml").read_text())


def doc(
    cause: str | None = "certificate-pinning",
    *,
    at: float = 0.0,
    src: str = "192.0.2.10",
    sni: str | None = "pinned.example.com",
    cn: str | None = None,
    mode: str = "forward-proxy",
    session: int = 1,
    log_type: str = "DECRYPTION",
    joined: list[str] | None = None,
    user: str | None = None,
    **tls: str,
) -> dict:
    """An ECS document as the pipeline writes one (field names of schemas/ecs), by hand."""
    failure = cause is not None
    ds: dict = {"failure": failure, "mode": mode}
    if failure:
        ds["cause"] = cause
    if joined:
        ds["correlation"] = {"key": f"012801096514:{session}", "joined": joined}
    out: dict = {
        "@timestamp": (START + timedelta(seconds=at)).isoformat(timespec="milliseconds"),
        "decryptscope": ds,
        "panw": {
            "panos": {"type": log_type, "flow_id": session, "policy": {"name": "decrypt-out"}}
        },
        "observer": {
            "serial_number": "012801096514",
            "hostname": "fw-edge-01",
            "ingress": {"zone": "trust"},
            "egress": {"zone": "untrust"},
        },
        "rule": {"name": "outbound-web"},
        "source": {"ip": src},
        "destination": {"ip": "203.0.113.20"},
        "tls": {"established": not failure, "version_protocol": "tls", "version": "1.2"},
    }
    if user:
        out["source"]["user"] = {"name": user, "domain": "example"}
    if sni:
        out["tls"]["client"] = {"server_name": sni}
    if cn:
        out["tls"]["server"] = {"x509": {"subject": {"common_name": cn}}}
    for key, value in tls.items():
        if key in {"auth", "kex"}:
            name = "auth" if key == "auth" else "key_exchange_algorithm"
            out["panw"]["panos"].setdefault("tls", {})[name] = value
        else:
            out["tls"][key] = value
    return out


def burst(n: int, clients: int, span_s: float, **kw) -> list[tuple[str, dict]]:
    """``n`` failures from ``clients`` clients, the first and the last ``span_s`` apart."""
    step = span_s / (n - 1) if n > 1 else 0.0
    tag = "|".join(f"{k}={v}" for k, v in sorted(kw.items()))
    return [
        (f"{tag}#{i}", doc(at=i * step, src=f"192.0.2.{20 + i % clients}", session=i, **kw))
        for i in range(n)
    ]


def kinds(section: dict) -> dict[str, str]:
    return {r["subject"]: r["kind"] for r in section["recommendations"]}


# --- the data file -------------------------------------------------------------------------------


def test_every_cause_the_data_names_is_in_the_catalogue():
    causes = set(load_catalogue().causes)
    named = {r["cause"] for r in DATA["routes"]} | {
        n["cause"] for n in DATA["never_exclude"] if "cause" in n
    }
    assert named <= causes, named - causes


def test_the_causes_never_excluded_are_the_certificate_blocks_and_inbound():
    never = {n.get("cause") or n.get("mode") for n in DATA["never_exclude"]}
    assert {"server-cert-revoked", "server-cert-expired", "server-cert-untrusted-issuer"} <= never
    assert "inbound-inspection" in never
    excludable = set(recommend.exclusion_causes())
    assert excludable == {
        "certificate-pinning",
        "client-cert-auth-required",
        "unsupported-feature",
        "unsupported-ec-curve",
        "unsupported-cipher",
        "unsupported-tls-version",
    }
    for route in DATA["routes"]:
        if "exclusion" in (route["kind"], route.get("otherwise")):
            assert route["modes"] == ["forward-proxy"], route["cause"]


def test_a_broken_data_file_is_refused_with_its_name(tmp_path):
    text = (SCHEMAS / "recommendations.toml").read_text()
    bad = tmp_path / "recommendations.toml"
    bad.write_text(text.replace('kind = "trust-chain"', 'kind = "trust-me"', 1))
    with pytest.raises(ConfigError, match=r"recommendations\.toml"):
        recommend.load_rules(bad)


def test_the_kb_checks_are_the_six_of_kb_83656():
    assert [c["number"] for c in DATA["inbound_checks"]] == [1, 2, 3, 4, 5, 6]


# --- gates ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "clients", "span", "excluded"),
    [
        (20, 3, 3600, True),
        (19, 3, 3600, False),
        (20, 2, 3600, False),
        (20, 3, 3599, False),
        (40, 8, 7200, True),
    ],
)
def test_the_exclusion_gate_at_its_edges(n, clients, span, excluded):
    section = recommend.recommend(burst(n, clients, span))
    assert (kinds(section) == {"pinned.example.com": "exclusion"}) is excluded
    assert (len(section["held"]) == 1) is not excluded


def test_gates_come_from_settings_and_bad_ones_are_refused():
    settings = load_settings(env={"DECRYPTSCOPE_RECOMMEND_MIN_FAILURES": "5"})
    gates = Gates.from_settings(settings)
    assert gates == Gates(min_failures=5)
    section = recommend.recommend(burst(5, 3, 3600), gates)
    assert kinds(section) == {"pinned.example.com": "exclusion"}
    assert section["gates"]["min_failures"] == 5
    for name, value in (("RECOMMEND_MIN_CLIENTS", "0"), ("RECOMMEND_MIN_SPAN_S", "-1")):
        with pytest.raises(ConfigError, match=name.lower()):
            load_settings(env={f"DECRYPTSCOPE_{name}": value})


def test_a_decrypted_session_to_the_destination_holds_the_exclusion_back():
    pairs = burst(30, 5, 7200)
    pairs.append(("ok", doc(None, at=100)))
    section = recommend.recommend(pairs)
    assert section["recommendations"] == []
    [held] = section["held"]
    assert held["subject"] == "pinned.example.com"
    assert any("1 decrypted session" in reason for reason in held["reasons"])
    # a decrypted session elsewhere changes nothing
    pairs[-1] = ("ok", doc(None, at=100, sni="other.example.com"))
    assert kinds(recommend.recommend(pairs)) == {"pinned.example.com": "exclusion"}


@pytest.mark.parametrize("cause", ["server-cert-revoked", "server-cert-expired"])
def test_revoked_and_expired_certificates_never_give_an_exclusion(cause):
    gates = Gates(min_failures=1, min_clients=1, min_span_s=0)
    section = recommend.recommend(burst(50, 10, 7200, cause=cause), gates)
    assert section["recommendations"] == [] and section["held"] == []
    [declined] = section["declined"]
    assert declined["cause"] == cause and declined["failures"] == 50
    assert "the block is the protection" in declined["reason"]


def test_a_destination_with_a_revoked_certificate_is_not_excluded_for_its_other_failures():
    pairs = burst(30, 5, 7200, cause="client-cert-auth-required")
    pairs.append(("revoked", doc("server-cert-revoked", at=50)))
    section = recommend.recommend(pairs)
    assert section["recommendations"] == []
    assert "server-cert-revoked" in " ".join(section["held"][0]["reasons"])


def test_inbound_inspection_is_never_excluded_whatever_the_volume():
    gates = Gates(min_failures=1, min_clients=1, min_span_s=0)
    pairs = burst(40, 8, 7200, cause="client-cert-auth-required", mode="inbound-inspection")
    section = recommend.recommend(pairs, gates)
    assert kinds(section) == {"pinned.example.com": "inbound"}
    [rec] = section["recommendations"]
    assert [c["number"] for c in rec["checks"]] == [4, 5]
    assert "fix the server" in rec["not_excluded"]


# --- evidence ------------------------------------------------------------------------------------


def test_a_joined_session_is_one_failure_and_its_traffic_log_names_the_user():
    joined = ["TRAFFIC", "DECRYPTION"]
    pairs = [
        ("t", doc("client-rejected-firewall-cert", log_type="TRAFFIC", joined=joined, user="bob")),
        ("d", doc("client-rejected-firewall-cert", joined=joined)),
    ]
    section = recommend.recommend(pairs)
    [rec] = section["recommendations"]
    assert rec["kind"] == "forward-trust-ca"
    assert rec["evidence"]["failures"] == 1
    assert rec["clients"] == [{"address": "192.0.2.10", "users": ["example\\bob"], "failures": 1}]


def test_a_later_version_of_a_document_replaces_the_earlier():
    evidence = Evidence()
    evidence.add("a", doc("certificate-pinning"))
    evidence.add("a", doc(None))
    section = evidence.recommend()
    assert section["evidence"]["failures"] == 0 and section["evidence"]["decrypted"] == 1


def test_the_order_of_the_documents_does_not_matter():
    pairs = burst(20, 3, 3600) + burst(5, 2, 60, sni="a.example.net", cause="unsupported-feature")
    pairs.append(("ok", doc(None, sni="a.example.net")))
    first = recommend.recommend(pairs)
    random.Random(7).shuffle(pairs)
    assert orjson.dumps(recommend.recommend(pairs)) == orjson.dumps(first)


def test_the_evidence_of_an_exclusion():
    section = recommend.recommend(burst(20, 3, 3600))
    [rec] = section["recommendations"]
    ev = rec["evidence"]
    assert ev["failures"] == 20 and ev["clients"] == 3
    assert ev["client_addresses"] == ["192.0.2.20", "192.0.2.21", "192.0.2.22"]
    assert ev["first_seen"] == "2026-11-20T09:00:00.000+00:00"
    assert ev["last_seen"] == "2026-11-20T10:00:00.000+00:00"
    assert ev["firewalls"] == ["fw-edge-01 (012801096514)"]
    assert ev["rules"] == ["outbound-web"] and ev["decryption_rules"] == ["decrypt-out"]
    assert ev["sessions"] == [f"012801096514:{i}" for i in range(5)]
    assert rec["review_by"] == "2026-12-20"  # the last failure's day + 30
    assert rec["url_entries"] == ["pinned.example.com/"]
    assert rec["exclude_entries"] == ["pinned.example.com"]
    assert rec["placements"] == [
        {"before": "decrypt-out", "name": "decryptscope-nd-decrypt-out", "from": ["trust"],
         "to": ["untrust"]}
    ]  # fmt: skip


def test_the_certificate_cn_names_the_destination_without_sni_and_a_wildcard_cn_none():
    pairs = burst(20, 3, 3600, sni=None, cn="Only.Example.NET")
    pairs += burst(20, 3, 3600, sni=None, cn="*.example.org")
    section = recommend.recommend(pairs)
    assert kinds(section) == {"only.example.net": "exclusion"}
    assert [d["subject"] for d in section["declined"]] == ["203.0.113.20"]


def test_wildcards_only_under_a_registrable_domain():
    pairs = burst(20, 3, 3600, sni="a.example.co.uk") + burst(20, 3, 3600, sni="b.example.co.uk")
    assert kinds(recommend.recommend(pairs)) == {"*.example.co.uk": "exclusion"}
    pairs = burst(20, 3, 3600, sni="example.co.uk") + burst(20, 3, 3600, sni="shop.co.uk")
    assert kinds(recommend.recommend(pairs)) == {
        "example.co.uk": "exclusion",
        "shop.co.uk": "exclusion",
    }


def test_no_wildcard_when_a_sibling_name_was_decrypted():
    pairs = burst(20, 3, 3600, sni="a.example.org") + burst(20, 3, 3600, sni="b.example.org")
    pairs.append(("ok", doc(None, sni="www.example.org")))
    assert kinds(recommend.recommend(pairs)) == {
        "a.example.org": "exclusion",
        "b.example.org": "exclusion",
    }


def test_cipher_limits_of_the_profile_and_of_the_server():
    allowed = {"cipher": "AES_256_CBC", "auth": "SHA384", "kex": "DHE"}
    weak = {"cipher": "RC4", "auth": "MD5", "kex": "RSA"}
    pairs = burst(3, 1, 60, cause="unsupported-cipher", sni="a.example.com", **allowed)
    pairs += burst(20, 3, 3600, cause="unsupported-cipher", sni="b.example.com", **weak)
    section = recommend.recommend(pairs)
    assert kinds(section) == {"decrypt-out": "profile", "b.example.com": "exclusion"}
    profile = next(r for r in section["recommendations"] if r["kind"] == "profile")
    assert [(s["setting"], s["value"]) for s in profile["settings"]] == [
        ("auth-algo-sha384", "yes"),
        ("enc-algo-aes-256-cbc", "yes"),
        ("keyxchg-algo-dhe", "yes"),
    ]
    assert profile["evidence"]["failures"] == 3


def test_config_names_are_prefixed_short_and_distinct():
    name = recommend.config_name("Example Issuing CA 1")
    assert name.startswith("decryptscope-") and len(name) <= 31
    assert name == recommend.config_name("Example Issuing CA 1")
    assert name != recommend.config_name("Example Issuing CA 2")
    assert recommend.config_name("Corp Root") == "decryptscope-corp-root"


# --- configuration -------------------------------------------------------------------------------


def golden(case: str) -> dict:
    return command.from_files([str(GOLDEN / f"{case}.log")], Settings())


def test_set_commands_for_the_firewall_and_for_panorama():
    text = render_set(golden("exclusion-at-gate"), Target("branch-dg", "branch-tpl", {}))
    name = "decryptscope-nd-decrypt-ou-aa65"
    lines = [line for line in text.splitlines() if not line.startswith("#")]
    assert lines == [
        f'set profiles custom-url-category {name} type "URL List"',
        f"set profiles custom-url-category {name} list payments.example.com/",
        f'set profiles custom-url-category {name} description "decryptscope: '
        'client-cert-auth-required; review by 2026-12-20"',
        f"set rulebase decryption rules {name} from trust to untrust source any destination any "
        f"source-user any service any category {name} action no-decrypt type ssl-forward-proxy",
        f'set rulebase decryption rules {name} description "decryptscope: '
        'client-cert-auth-required; review by 2026-12-20"',
        f"move rulebase decryption rules {name} before decrypt-outbound",
        f'set device-group branch-dg profiles custom-url-category {name} type "URL List"',
        f"set device-group branch-dg profiles custom-url-category {name} list "
        "payments.example.com/",
        f"set device-group branch-dg profiles custom-url-category {name} description "
        '"decryptscope: client-cert-auth-required; review by 2026-12-20"',
        f"set device-group branch-dg pre-rulebase decryption rules {name} from trust to untrust "
        f"source any destination any source-user any service any category {name} action "
        "no-decrypt type ssl-forward-proxy",
        f"set device-group branch-dg pre-rulebase decryption rules {name} description "
        '"decryptscope: client-cert-auth-required; review by 2026-12-20"',
        f"move device-group branch-dg pre-rulebase decryption rules {name} before decrypt-outbound",
    ]
    assert (
        "# set shared ssl-decrypt ssl-exclude-cert payments.example.com description "
        '"decryptscope: client-cert-auth-required; review by 2026-12-20" exclude yes'
    ) in text
    assert "# set template branch-tpl config shared ssl-decrypt ssl-exclude-cert" in text


def test_set_commands_quote_wildcards_and_keep_untrusted_roots_as_notes():
    text = render_set(golden("exclusion-wildcard"))
    assert 'list [ "^.legacy.example.org/" solo.example.net/ ]' in text
    assert '# set shared ssl-decrypt ssl-exclude-cert "*.legacy.example.org"' in text
    text = render_set(golden("trust-chain"))
    chain = recommend.config_name("Example Issuing CA 2")
    root = recommend.config_name("Corp Private Root")
    assert f"\nset shared ssl-decrypt trusted-root-CA {chain}\n" in text
    assert f"# only if the CA is legitimate: set shared ssl-decrypt trusted-root-CA {root}" in text
    assert f"\nset shared ssl-decrypt trusted-root-CA {root}" not in text


def test_profile_settings_name_the_profile_given_for_the_rule():
    section = golden("version-profile-or-server")
    text = render_set(section, Target(profiles={"decrypt-outbound": "dp-strict"}))
    assert "\nset profiles decryption dp-strict ssl-protocol-settings max-version max\n" in text
    assert '"<profile-of-decrypt-outbound>"' in render_set(section)


def fragments(text: str, target: str, kind: str, action: str = "set") -> list[ET.Element]:
    root = ET.fromstring(text.encode())
    return [
        f
        for f in root.iter("fragment")
        if f.get("target") == target and f.get("kind") == kind and f.get("action") == action
    ]


def test_xml_fragments_parse_back_into_the_objects_pan_os_python_builds():
    text = render_xml(golden("exclusion-two-rules"))
    description = "decryptscope: client-cert-auth-required; review by 2026-12-20"
    names = {"decrypt-guest": "decryptscope-nd-decrypt-guest",
             "decrypt-outbound": "decryptscope-nd-decrypt-ou-aa65"}  # fmt: skip
    zones = {"decrypt-guest": "guest", "decrypt-outbound": "trust"}
    for target in ("firewall", "panorama"):
        sets = fragments(text, target, "exclusion")
        categories = [f for f in sets if f.get("xpath").endswith("/custom-url-category")]
        rules = [f for f in sets if f.get("xpath").endswith("/decryption/rules")]
        excludes = [f for f in sets if f.get("choice") == "alternative"]
        parsed = CustomUrlCategory().refreshall_from_xml(_wrap("custom-url-category", categories))
        expected = [
            CustomUrlCategory(names[r], url_value=["sync.example.com/"], type="URL List",
                              description=description)
            for r in sorted(names)
        ]  # fmt: skip
        assert [p.name for p in parsed] == [e.name for e in expected]
        assert all(p.equal(e) for p, e in zip(parsed, expected, strict=True))
        parsed = DecryptionRule().refreshall_from_xml(_wrap("rules", rules))
        expected = [
            DecryptionRule(names[r], description=description, source_zones=[zones[r]],
                           destination_zones=["untrust"], source_addresses=["any"],
                           destination_addresses=["any"], source_users=["any"],
                           services=["any"], url_categories=[names[r]], action="no-decrypt",
                           decryption_type="ssl-forward-proxy")
            for r in sorted(names)
        ]  # fmt: skip
        assert all(p.equal(e) for p, e in zip(parsed, expected, strict=True))
        moves = fragments(text, target, "exclusion", "move")
        assert sorted((m.get("where"), m.get("dst")) for m in moves) == [
            ("before", "decrypt-guest"),
            ("before", "decrypt-outbound"),
        ]
        [exclude] = SslDecryptExcludeCert().refreshall_from_xml(_wrap("ssl-exclude-cert", excludes))
        assert exclude.equal(
            SslDecryptExcludeCert("sync.example.com", description=description, exclude=True)
        )


def test_xml_trust_chain_and_profile_fragments():
    text = render_xml(golden("trust-chain"), Target(template="tpl"))
    for target in ("firewall", "panorama"):
        found = fragments(text, target, "trust-chain")
        cas = []
        for fragment in found:
            [decrypt] = SslDecrypt().refreshall_from_xml(fragment[0])
            cas += decrypt.trusted_root_cas
        assert sorted(cas) == sorted(
            recommend.config_name(cn) for cn in ("Example Issuing CA 2", "Corp Private Root")
        )
        legit = [f for f in found if f.get("condition") == "only if the CA is legitimate"]
        assert len(legit) == 1
    xpaths = {f.get("xpath") for f in fragments(text, "panorama", "trust-chain")}
    assert xpaths == {
        "/config/devices/entry[@name='localhost.localdomain']/template/entry[@name='tpl']"
        "/config/shared"
    }
    text = render_xml(golden("version-profile-or-server"), Target(device_group="dg"))
    [fragment] = fragments(text, "panorama", "profile")
    assert fragment.get("xpath").endswith("/device-group/entry[@name='dg']/profiles/decryption")
    entry = fragment[0]
    assert entry.get("name") == "<profile-of-decrypt-outbound>"
    assert {e.tag: e.text for e in entry.find("ssl-protocol-settings")} == {"max-version": "max"}


def _wrap(tag: str, nodes: list[ET.Element]) -> ET.Element:
    container = ET.Element(tag)
    for node in nodes:
        container.extend(list(node))
    return container


@pytest.mark.parametrize("fmt", ["text", "json", "set", "xml"])
def test_the_same_evidence_gives_byte_identical_output(fmt):
    path = str(ROOT / "deploy" / "demo" / "sample-traffic.log")
    first = command.render(command.from_files([path], Settings()), fmt)
    assert command.render(command.from_files([path], Settings()), fmt) == first


# --- the command ---------------------------------------------------------------------------------


def test_the_command_line(capsys):
    path = str(GOLDEN / "exclusion-at-gate.log")
    assert cli.main(["recommend", path, "--format", "json", "--no-progress"]) == 0
    section = orjson.loads(capsys.readouterr().out)
    assert [r["subject"] for r in section["recommendations"]] == ["payments.example.com"]
    assert cli.main(["recommend", path, "--format", "set", "--device-group", "dg"]) == 0
    assert "set device-group dg pre-rulebase decryption rules" in capsys.readouterr().out
    assert cli.main(["recommend", path, "--from-es"]) == 1
    assert "not both" in capsys.readouterr().err
    assert cli.main(["recommend", path, "--profile", "nonsense"]) == 1


def test_since():
    assert command.parse_since("24h") == timedelta(hours=24)
    assert command.parse_since("90m") == timedelta(minutes=90)
    assert command.parse_since("all") is None
    for bad in ("0h", "yesterday", "-1d"):
        with pytest.raises(ConfigError):
            command.parse_since(bad)
    query = command.es_query(timedelta(days=7))
    assert query["bool"]["filter"] == [{"range": {"@timestamp": {"gte": "now-604800s"}}}]
    assert "filter" not in command.es_query(None)["bool"]


def test_analyze_carries_the_same_section():
    from pipeline.commands import analyze

    path = str(GOLDEN / "exclusion-wildcard.log")
    settings = dataclasses.replace(Settings(), recommend_min_failures=2)
    report = analyze.build([path], settings)
    assert report["recommendations"] == command.from_files([path], settings)
    assert report["recommendations"]["gates"]["min_failures"] == 2


def test_the_html_report_shows_the_recommendations():
    from html.parser import HTMLParser

    from pipeline.commands import analyze
    from pipeline.report.html import render_html

    report = analyze.build([str(GOLDEN / "exclusion-wildcard.log")], Settings())
    page = render_html(report)
    HTMLParser().feed(page)
    section = page.split('<section id="recommendations">', 1)[1].split("</section>", 1)[0]
    assert "exclusion: *.legacy.example.org" in section
    assert "exclusion: solo.example.net" in section
    assert "c.legacy.example.org" in section  # held back, with why
    assert "set profiles custom-url-category decryptscope-nd-" in section  # the set commands
