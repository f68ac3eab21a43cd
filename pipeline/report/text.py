"""The ``analyze`` report as terminal text and as JSON."""

from __future__ import annotations

import textwrap
from typing import Any

import orjson

WIDTH = 100


def render_json(report: dict[str, Any]) -> str:
    return orjson.dumps(report, option=orjson.OPT_INDENT_2).decode() + "\n"


def _pct(share: float) -> str:
    return f"{share * 100:5.1f}%"


def _tops(label: str, items: list[dict[str, Any]]) -> str | None:
    if not items:
        return None
    return f"    {label:<18}" + ", ".join(f"{i['value']} ({i['count']})" for i in items)


def render_text(report: dict[str, Any]) -> str:
    out: list[str] = []
    span = report["span"]
    fails = report["failures"]
    corr = report["correlation"]
    types = ", ".join(f"{t} {n}" for t, n in report["records_by_type"].items()) or "none"
    out.append("Decryptscope report")
    out.append(f"  records        {report['records']} ({types})")
    if report["parse_errors"]:
        errs = ", ".join(f"{t} {n}" for t, n in report["parse_errors"].items())
        out.append(f"  not parsed     {sum(report['parse_errors'].values())} ({errs})")
    out.append(f"  time span      {span['start'] or '-'}  ..  {span['end'] or '-'}")
    out.append(f"  failures       {fails['sessions']} sessions ({fails['events']} log events)")
    out.append(
        f"  correlated     {corr['sessions_correlated']} sessions joined across log types "
        f"(window {corr['window_s']:g} s)"
    )
    if not report["causes"]:
        out.append("")
        out.append("No decryption failures found.")
        return "\n".join(out) + "\n" + render_extras(report)
    out.append("")
    out.append("Failures by mode")
    for m in report["modes"]:
        out.append(f"  {m['mode']:<22}{m['count']:>8}  {_pct(m['share'])}")
    out.append("")
    out.append("Failures by cause")
    for c in report["causes"]:
        out.append(f"  {c['cause']:<38}{c['count']:>8}  {_pct(c['share'])}  {c['category']}")
    for c in report["causes"]:
        out.append("")
        out.append(f"== {c['cause']}: {c['title']}")
        modes = ", ".join(f"{m} {n}" for m, n in c["modes"].items())
        out.append(f"    {c['count']} sessions ({_pct(c['share']).strip()}); modes: {modes}")
        for label, key in (
            ("top servers", "top_servers"),
            ("top rules", "top_rules"),
            ("decryption rules", "top_decryption_rules"),
            ("top sources", "top_sources"),
            ("firewalls", "top_firewalls"),
        ):
            line = _tops(label, c[key])
            if line:
                out.append(line)
        out.append("    what to do:")
        for para in c["remediation"].splitlines():
            out.extend(
                textwrap.wrap(para, WIDTH, initial_indent="      ", subsequent_indent="      ")
                or [""]
            )
        out.append("    references: " + " ".join(c["references"]))
    if report.get("recommendations"):
        out.append("")
        out.append(render_recommendations(report["recommendations"]).rstrip("\n"))
    return "\n".join(out) + "\n" + render_extras(report)


# --- recommendations (``analyze`` and ``decryptscope recommend``) --------------------------------

_LABEL = 13


def _duration(seconds: float) -> str:
    minutes = int(seconds // 60)
    if minutes >= 60:
        return f"{minutes // 60} h {minutes % 60:02d} min"
    return f"{minutes} min" if minutes else f"{int(seconds)} s"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _field(label: str, text: str, indent: int = 4) -> list[str]:
    first = " " * indent + f"{label:<{_LABEL}}"
    rest = " " * (indent + _LABEL)
    return textwrap.wrap(text, WIDTH, initial_indent=first, subsequent_indent=rest) or [first]


def _wrapped(text: str, indent: int = 6) -> list[str]:
    pad = " " * indent
    return textwrap.wrap(text, WIDTH, initial_indent=pad, subsequent_indent=pad)


def _more(items: list[str], total: int) -> str:
    text = ", ".join(items)
    return text + (f", ... ({total} in all)" if total > len(items) else "")


def _change(rec: dict[str, Any]) -> str:
    kind = rec["kind"]
    if kind == "exclusion":
        places = "; ".join(
            f"{p['name']} before {p['before'] or 'every other decryption rule'} "
            f"(from {' '.join(p['from'])} to {' '.join(p['to'])})"
            for p in rec["placements"]
        )
        return (
            f"a custom URL category with {', '.join(rec['url_entries'])} and a no-decrypt "
            f"decryption rule matching it: {places}; or instead an SSL Decryption Exclusion "
            f"{', '.join(rec['exclude_entries'])} (device-wide, no zone or user scope)"
        )
    if kind == "trust-chain":
        if not rec["certificate_name"]:
            return "the logs name no CA: read Chain Status and Root CN in the Decryption log"
        what = "intermediate" if rec["variant"] == "missing-intermediate" else "root"
        text = (
            f'import the {what} CA "{rec["ca"]}" as {rec["certificate_name"]} (Device > '
            "Certificate Management > Certificates > Import) and add it to the trusted root CAs "
            "for decryption"
        )
        if rec["variant"] == "untrusted-root":
            text = "only if the CA is legitimate: " + text
        return text
    if kind == "forward-trust-ca":
        return (
            "no firewall change: export the Forward Trust CA certificate (Device > Certificate "
            "Management > Certificates) and install it in these clients' trust stores (GPO or "
            "MDM; browsers and runtimes with their own store, such as Firefox, Java and Python, "
            "too)"
        )
    if kind == "profile":
        return (
            f"in the Decryption profile of rule {rec['decryption_rule'] or '(unknown)'} "
            f"(Objects > Decryption Profile), {rec['section']}:"
        )
    return "on the server, per check below; no firewall change"


def _recommendation(number: int, rec: dict[str, Any]) -> list[str]:
    ev = rec["evidence"]
    variant = f" ({rec['variant'].replace('-', ' ')})" if rec.get("variant") else ""
    out = [f"[{number}] {rec['kind']}: {rec['subject']}{variant} - {rec['title']}"]
    for why in rec["why"]:
        out += _field("why", f"{why['cause']} ({why['failures']}): {why['text']}")
    span = f"{ev['first_seen']} .. {ev['last_seen']} ({_duration(ev['span_s'])})"
    out += _field(
        "evidence",
        f"{_plural(ev['failures'], 'failure')} from {_plural(ev['clients'], 'client')}, {span}",
    )
    if ev["client_addresses"] and rec["kind"] != "forward-trust-ca":
        out += _field("clients", _more(ev["client_addresses"], ev["clients"]))
    if ev["users"]:
        out += _field("users", ", ".join(ev["users"]))
    out += _field("firewalls", ", ".join(ev["firewalls"]) or "-")
    rules = ", ".join(ev["rules"]) or "-"
    decryption = ", ".join(ev["decryption_rules"]) or "-"
    out += _field("rules", f"security {rules}; decryption {decryption}")
    out += _field("sessions", ", ".join(ev["sessions"]) or "-")
    if rec["kind"] == "exclusion" and len(rec["hosts"]) > 1:
        out += _field("hosts", ", ".join(rec["hosts"]))
    if rec["kind"] == "trust-chain":
        out += _field("servers", ", ".join(rec["servers"]))
    if rec["kind"] == "forward-trust-ca":
        clients = [
            f"{c['address']}"
            + (f" ({', '.join(c['users'])})" if c["users"] else "")
            + f" {c['failures']}"
            for c in rec["clients"]
        ]
        out += _field("clients", f"{rec['client_count']}: " + ", ".join(clients))
    out += _field("change", _change(rec))
    if rec["kind"] == "profile":
        for s in rec["settings"]:
            servers = ", ".join(s["servers"])
            out += _field(
                "", f"{s['setting']} {s['value']}: {_plural(s['failures'], 'failure')} ({servers})"
            )
    if rec["kind"] == "inbound":
        if rec["addresses"]:
            out += _field("addresses", ", ".join(rec["addresses"]))
        for check in rec["checks"]:
            out += _field(
                f"KB check {check['number']}",
                f"{check['kb']} ({_plural(check['failures'], 'failure')}): "
                f"{check['server_change']}",
            )
        if rec.get("not_excluded"):
            out += _field("not excluded", rec["not_excluded"])
    out += _field("review by", rec["review_by"] or "-")
    return out


def render_recommendations(section: dict[str, Any]) -> str:
    """The recommendations section (``pipeline.recommend``) as terminal text."""
    gates = section["gates"]
    ev = section["evidence"]
    out = ["Recommendations"]
    out += _field(
        "evidence",
        f"{ev['first_seen'] or '-'} .. {ev['last_seen'] or '-'}: "
        f"{_plural(ev['failures'], 'failure')}, {_plural(ev['decrypted'], 'decrypted session')}",
        2,
    )
    out += _field(
        "gate",
        f"exclusions need at least {_plural(gates['min_failures'], 'failure')} from "
        f"{_plural(gates['min_clients'], 'distinct client')} over at least "
        f"{_duration(gates['min_span_s'])}, and no decrypted session to the destination; "
        f"review {gates['review_days']} days after the last failure",
        2,
    )
    recs = section["recommendations"]
    if not recs:
        out.append("")
        out.append("  No change is recommended.")
    for number, rec in enumerate(recs, 1):
        out.append("")
        out += _recommendation(number, rec)
    if section["held"]:
        out.append("")
        out.append("Held back from exclusion (short of the gate)")
        for held in section["held"]:
            causes = ", ".join(f"{c} {n}" for c, n in held["causes"].items())
            out.append(f"  {held['subject']}: {causes}")
            for reason in held["reasons"]:
                out += _wrapped(reason)
    if section["declined"]:
        out.append("")
        out.append("Never excluded (the block is the fix, or there is no host name to exclude)")
        for declined in section["declined"]:
            out.append(f"  {declined['subject']}: {declined['cause']} {declined['failures']}")
            out += _wrapped(declined["reason"])
    if recs:
        out.append("")
        out += _wrapped(
            "The changes as PAN-OS configuration: decryptscope recommend --format set (CLI "
            "commands) or --format xml (XML API fragments).",
            0,
        )
    return "\n".join(out) + "\n"


def _share(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


def _changes_text(changes: dict[str, Any]) -> list[str]:
    out = [
        "",
        f"Change points (failures {changes['before_s']:g} s before vs {changes['after_s']:g} s "
        f"after; flagged: a cause that appeared, or grew x{changes['growth_factor']:g} with at "
        f"least {changes['min_failures']} failures after)",
    ]
    if not changes["points"]:
        out.append("  none found in the logs and none declared (--change-at TIME[,serial])")
        return out
    for point in changes["points"]:
        merged = f" (x{point['merged']})" if point["merged"] > 1 else ""
        out.append(
            f"  {point['time']}  {point['firewall']}  {point['kind']}{merged}: {point['summary']}"
        )
        before, after = point["before"], point["after"]
        if not before["covered_s"]:
            note = "; no logs of this firewall before it"
        else:
            basis = "share of TLS sessions" if point["basis"] == "share" else "failures per hour"
            note = f"; compared by {basis}"
        out.append(
            f"      TLS sessions {before['tls_sessions']} -> {after['tls_sessions']}, failure rate "
            f"{_share(before['failure_rate'])} -> {_share(after['failure_rate'])}{note}"
        )
        for cause in point["causes"][:8]:
            b, a = cause["before"], cause["after"]
            flag = f"  {cause['flag'].upper()}" if cause["flag"] else ""
            grown = f" x{cause['growth']:.1f}" if cause["growth"] else ""
            out.append(
                f"      {cause['cause']:<38}{b['failures']:>5} ({_share(b['share']):>6}) ->"
                f"{a['failures']:>5} ({_share(a['share']):>6}){grown}{flag}"
            )
    return out


def _coverage_text(cov: dict[str, Any]) -> list[str]:
    out = ["", "Decryption coverage (TLS sessions that did not fail)"]
    if not cov["tls_sessions"]:
        out.append("  no TLS session ends or DECRYPTION logs that say whether they were decrypted")
        return out
    out.append(
        f"  {cov['tls_sessions']} TLS sessions: {cov['decrypted']} decrypted "
        f"({_share(cov['share_decrypted'])}), {cov['not_decrypted']} not decrypted"
    )
    for label, key in (
        ("by firewall", "by_firewall"),
        ("by rule", "by_rule"),
        ("by zones", "by_zones"),
        ("by application", "by_application"),
    ):
        rows = ", ".join(f"{r['value']} {r['decrypted']}/{r['sessions']}" for r in cov[key][:5])
        out.append(f"    {label:<18}{rows}")
    rows = ", ".join(
        f"{r['destination']} ({r['sessions']} sessions, {r['bytes']} B)"
        for r in cov["undecrypted_by_sessions"][:5]
    )
    out.append(f"    {'not decrypted':<18}{rows or '-'}")
    rows = ", ".join(
        f"{r['destination']} ({r['bytes']} B)" for r in cov["undecrypted_by_bytes"][:5]
    )
    out.append(f"    {'  by bytes':<18}{rows or '-'}")
    return out


def _certificates_text(certs: dict[str, Any]) -> list[str]:
    out = ["", f"Certificates that expire within {certs['warn_days']} days (or have expired)"]
    if not certs["expiring"]:
        out.append(f"  none ({certs['seen']} certificates seen)")
        return out
    for cert in certs["expiring"]:
        left = cert.get("days_left")
        left_text = "expired" if left is not None and left <= 0 else f"{left} days left"
        if left is None:
            left_text = "days left unknown"
        servers = ", ".join(s["value"] for s in cert.get("servers", ())[:3])
        sessions = f", {cert['sessions']} sessions" if "sessions" in cert else ""
        out.append(
            f"  {cert['role']:<20}{cert['subject']}  not after {cert['not_after']}  "
            f"({left_text}{sessions}{'; servers ' + servers if servers else ''})"
        )
    return out


def render_extras(report: dict[str, Any]) -> str:
    """The change points, coverage and certificates sections (text)."""
    out: list[str] = []
    if "changes" in report:
        out += _changes_text(report["changes"])
    if "coverage" in report:
        out += _coverage_text(report["coverage"])
    if "certificates" in report:
        out += _certificates_text(report["certificates"])
    return "\n".join(out) + "\n" if out else ""
