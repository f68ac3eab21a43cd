"""The recommendations (``pipeline.recommend``) as PAN-OS configuration to review and apply:
CLI ``set`` commands (configure mode) and XML API fragments, each for a firewall and for
Panorama (a device group for objects and rules, a template for ``ssl-decrypt``).

The XML is built with pan-os-python's own objects (custom URL categories, decryption rules,
``ssl-decrypt`` and its exclusions), so that it is what the library itself would send; the
Decryption profile has no class there and is built as the element tree pan-os-codegen's spec
describes. The ``set`` lines follow the same XPaths (Iron Skillet's sample configurations use the
same forms). Names come from the recommendations (``decryptscope-`` prefixed); everything is
sorted, so the same recommendations give byte-identical configuration.

Only exclusions, trust-chain fixes and profile settings are firewall configuration; Forward
Trust CA deployment and the inbound-inspection checks are changes on clients and servers and
appear as notes.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

DEVICE_GROUP = "<device-group>"
TEMPLATE = "<template>"
# A CLI word needs no quotes when it holds only these characters.
_BARE = re.compile(r"[A-Za-z0-9._/:@-]+")
DESCRIPTION_MAX = 255


@dataclass(frozen=True)
class Target:
    """What the logs do not say: the Panorama device group and template, and the Decryption
    profile of each decryption rule. Left unset, they are ``<placeholders>`` the device refuses,
    so nothing is applied to a guessed name."""

    device_group: str = DEVICE_GROUP
    template: str = TEMPLATE
    profiles: Mapping[str, str] = field(default_factory=dict)

    def profile(self, rule: str | None) -> str:
        if rule and rule in self.profiles:
            return self.profiles[rule]
        return f"<profile-of-{rule or 'the-decryption-rule'}>"


@dataclass
class _Exclusion:
    name: str
    before: str | None
    zones_from: set[str] = field(default_factory=set)
    zones_to: set[str] = field(default_factory=set)
    url: set[str] = field(default_factory=set)
    causes: set[str] = field(default_factory=set)
    review_by: str = ""


def _exclusions(section: Mapping[str, Any]) -> list[_Exclusion]:
    """One custom URL category and one no-decrypt rule per decryption rule to precede."""
    groups: dict[str, _Exclusion] = {}
    for rec in section["recommendations"]:
        if rec["kind"] != "exclusion":
            continue
        for place in rec["placements"]:
            group = groups.setdefault(place["name"], _Exclusion(place["name"], place["before"]))
            group.zones_from.update(place["from"])
            group.zones_to.update(place["to"])
            group.url.update(rec["url_entries"])
            group.causes.update(rec["evidence"]["causes"])
            review = rec["review_by"] or ""
            group.review_by = min(filter(None, (group.review_by, review)), default="")
    for group in groups.values():
        for zones in (group.zones_from, group.zones_to):
            if len(zones) > 1:
                zones.discard("any")
    return [groups[name] for name in sorted(groups)]


def _description(causes: Any, review_by: str | None) -> str:
    text = f"decryptscope: {', '.join(sorted(causes))}; review by {review_by or '-'}"
    return text[:DESCRIPTION_MAX]


def _word(value: str) -> str:
    if _BARE.fullmatch(value):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _words(values: Any) -> str:
    items = sorted(values)
    if len(items) == 1:
        return _word(items[0])
    return "[ " + " ".join(_word(v) for v in items) + " ]"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _kind_note(rec: Mapping[str, Any]) -> str:
    ev = rec["evidence"]
    causes = ", ".join(f"{c} {n}" for c, n in ev["causes"].items())
    return (
        f"# -- {rec['kind']}: {rec['subject']} ({causes}; {_plural(ev['failures'], 'failure')} "
        f"from {_plural(ev['clients'], 'client')}, {ev['first_seen']} .. {ev['last_seen']}; "
        f"review by {rec['review_by']})"
    )


# --- set commands ------------------------------------------------------------------------------


def _set_form(section: Mapping[str, Any], target: Target, panorama: bool) -> list[str]:
    if panorama:
        objects = f"device-group {_word(target.device_group)} "
        rulebase = f"device-group {_word(target.device_group)} pre-rulebase"
        shared = f"template {_word(target.template)} config shared"
        out = [
            f"# ===== Panorama: device group {target.device_group}, template {target.template} "
            "(commit, then push) ====="
        ]
    else:
        objects, rulebase, shared = "", "rulebase", "shared"
        out = ["# ===== firewall (commit after review) ====="]
    recs = section["recommendations"]
    for rec in recs:
        if rec["kind"] == "exclusion":
            out.append(_kind_note(rec))
    for group in _exclusions(section):
        name = group.name
        category = f"set {objects}profiles custom-url-category {name}"
        out.append(f'{category} type "URL List"')
        out.append(f"{category} list {_words(group.url)}")
        out.append(f"{category} description {_word(_description(group.causes, group.review_by))}")
        rule = f"{rulebase} decryption rules {name}"
        out.append(
            f"set {rule} from {_words(group.zones_from)} to {_words(group.zones_to)} "
            f"source any destination any source-user any service any category {name} "
            "action no-decrypt type ssl-forward-proxy"
        )
        out.append(f"set {rule} description {_word(_description(group.causes, group.review_by))}")
        where = f"before {_word(group.before)}" if group.before else "top"
        out.append(f"move {rule} {where}")
    excluded = [r for r in recs if r["kind"] == "exclusion"]
    if excluded:
        out.append(
            "# alternatively, instead of the categories and rules above: SSL Decryption "
            "Exclusions (device-wide, no zone or user scope)"
        )
        for rec in excluded:
            description = _word(_description(rec["evidence"]["causes"], rec["review_by"]))
            for entry in rec["exclude_entries"]:
                out.append(
                    f"# set {shared} ssl-decrypt ssl-exclude-cert {_word(entry)} "
                    f"description {description} exclude yes"
                )
    for rec in recs:
        if rec["kind"] == "trust-chain":
            out.append(_kind_note(rec))
            name = rec["certificate_name"]
            if not name:
                out.append("# the logs name no CA: read Root CN and Chain Status in the logs")
                continue
            out.append(
                f"# import the CA certificate first, named {name} (Device > Certificate "
                "Management > Certificates > Import; XML API type=import&category=certificate"
                f"&certificate-name={name}&format=pem"
                + (f"&target-tpl={target.template}" if panorama else "")
                + ")"
            )
            line = f"set {shared} ssl-decrypt trusted-root-CA {_word(name)}"
            if rec["variant"] == "untrusted-root":
                line = "# only if the CA is legitimate: " + line
            out.append(line)
    for rec in recs:
        if rec["kind"] == "profile":
            out.append(_kind_note(rec))
            profile = _word(target.profile(rec["decryption_rule"]))
            for setting in rec["settings"]:
                out.append(
                    f"set {objects}profiles decryption {profile} {rec['section']} "
                    f"{setting['setting']} {setting['value']}"
                )
    for rec in recs:
        if rec["kind"] == "forward-trust-ca":
            out.append(_kind_note(rec))
            out.append(
                "# no firewall change: install the Forward Trust CA certificate on these clients: "
                + ", ".join(c["address"] for c in rec["clients"])
            )
        elif rec["kind"] == "inbound":
            out.append(_kind_note(rec))
            for check in rec["checks"]:
                out.append(
                    f"# no firewall change: KB 83656 check {check['number']} ({check['kb']}): "
                    f"{check['server_change']}"
                )
    return out


def render_set(section: Mapping[str, Any], target: Target | None = None) -> str:
    """The recommendations as PAN-OS CLI configure-mode commands, firewall then Panorama."""
    target = target or Target()
    out = [
        "# decryptscope recommendations as PAN-OS configure-mode commands. Review each change;",
        "# lines starting with # are notes, not commands. Evidence: "
        f"{section['evidence']['first_seen']} .. {section['evidence']['last_seen']}.",
    ]
    if not section["recommendations"]:
        out.append("# no change is recommended")
        return "\n".join(out) + "\n"
    out += _set_form(section, target, panorama=False)
    out += _set_form(section, target, panorama=True)
    return "\n".join(out) + "\n"


# --- XML API fragments ---------------------------------------------------------------------------


def _fragment(
    parent: ET.Element, target: str, kind: str, action: str, xpath: str, **extra: str
) -> ET.Element:
    node = ET.SubElement(parent, "fragment", target=target, kind=kind, action=action, xpath=xpath)
    for key, value in sorted(extra.items()):
        node.set(key.replace("_", "-"), value)
    return node


def _element(obj: Any) -> ET.Element:
    return ET.fromstring(obj.element_str())


def _profile_entry(name: str, section_name: str, settings: list[Mapping[str, Any]]) -> ET.Element:
    entry = ET.Element("entry", name=name)
    section = ET.SubElement(entry, section_name)
    for setting in settings:
        ET.SubElement(section, setting["setting"]).text = setting["value"]
    return entry


def _xml_form(root: ET.Element, section: Mapping[str, Any], target: Target, form: str) -> None:
    from panos.device import SslDecrypt, SslDecryptExcludeCert, Vsys
    from panos.firewall import Firewall
    from panos.objects import CustomUrlCategory
    from panos.panorama import DeviceGroup, Panorama, Template
    from panos.policies import DecryptionRule, PreRulebase, Rulebase

    if form == "panorama":
        scope: Any = Panorama("panorama").add(DeviceGroup(target.device_group))
        rulebase: Any = scope.add(PreRulebase())
        shared: Any = Panorama("panorama").add(Template(target.template)).add(Vsys("shared"))
        profiles_xpath = scope.xpath() + "/profiles/decryption"
    else:
        scope = Firewall()
        rulebase = scope.add(Rulebase())
        shared = Firewall(vsys="shared")
        profiles_xpath = scope.xpath_vsys() + "/profiles/decryption"
    recs = section["recommendations"]
    for group in _exclusions(section):
        description = _description(group.causes, group.review_by)
        category = scope.add(
            CustomUrlCategory(
                group.name, url_value=sorted(group.url), type="URL List", description=description
            )
        )
        node = _fragment(root, form, "exclusion", "set", category.xpath_short())
        node.append(_element(category))
        rule = rulebase.add(
            DecryptionRule(
                group.name,
                description=description,
                source_zones=sorted(group.zones_from),
                destination_zones=sorted(group.zones_to),
                source_addresses=["any"],
                destination_addresses=["any"],
                source_users=["any"],
                services=["any"],
                url_categories=[group.name],
                action="no-decrypt",
                decryption_type="ssl-forward-proxy",
            )
        )
        node = _fragment(root, form, "exclusion", "set", rule.xpath_short())
        node.append(_element(rule))
        where = {"where": "before", "dst": group.before} if group.before else {"where": "top"}
        _fragment(root, form, "exclusion", "move", rule.xpath(), **where)
    excluded = [r for r in recs if r["kind"] == "exclusion"]
    if excluded:
        decrypt = shared.add(SslDecrypt())
        entries = []
        for rec in excluded:
            description = _description(rec["evidence"]["causes"], rec["review_by"])
            for host in rec["exclude_entries"]:
                entries.append(
                    decrypt.add(SslDecryptExcludeCert(host, description=description, exclude=True))
                )
        for entry in sorted(entries, key=lambda e: e.name):
            node = _fragment(
                root, form, "exclusion", "set", entry.xpath_short(), choice="alternative"
            )
            node.append(_element(entry))
    for rec in recs:
        if rec["kind"] != "trust-chain" or not rec["certificate_name"]:
            continue
        decrypt = shared.add(SslDecrypt(trusted_root_cas=[rec["certificate_name"]]))
        extra = {"requires": f"certificate {rec['certificate_name']} imported first"}
        if rec["variant"] == "untrusted-root":
            extra["condition"] = "only if the CA is legitimate"
        node = _fragment(root, form, "trust-chain", "set", decrypt.xpath_short(), **extra)
        node.append(_element(decrypt))
    for rec in recs:
        if rec["kind"] != "profile":
            continue
        node = _fragment(root, form, "profile", "set", profiles_xpath)
        node.append(
            _profile_entry(target.profile(rec["decryption_rule"]), rec["section"], rec["settings"])
        )


def render_xml(section: Mapping[str, Any], target: Target | None = None) -> str:
    """The recommendations as XML API fragments (``type=config``, ``action=set`` with
    ``xpath`` and the fragment's child as ``element``; ``action=move`` with ``where`` and
    ``dst``), for a firewall and for Panorama."""
    target = target or Target()
    root = ET.Element("decryptscope-configuration")
    evidence = f"{section['evidence']['first_seen']} .. {section['evidence']['last_seen']}"
    root.append(
        ET.Comment(
            " decryptscope recommendations as PAN-OS XML API fragments; review before applying. "
            f"Evidence: {evidence.replace('--', '- -')} "
        )
    )
    for form in ("firewall", "panorama"):
        _xml_form(root, section, target, form)
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"
