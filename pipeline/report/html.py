"""The ``analyze`` report as ONE self-contained HTML page: inline CSS, a few lines of inline JS
and an inline SVG chart; nothing is fetched from the network. The page layout is the data file
``template.html`` beside this module (found through ``pipeline.resources``)."""

from __future__ import annotations

import html
from datetime import datetime
from typing import Any

from pipeline import __version__
from pipeline.report.panos_config import render_set
from pipeline.resources import REPORT_TEMPLATE

# Colour-blind-friendly palette (Okabe-Ito, then Tableau); causes get colours in report order.
PALETTE = (
    "#0072B2",
    "#E69F00",
    "#009E73",
    "#D55E00",
    "#CC79A7",
    "#56B4E9",
    "#F0E442",
    "#000000",
    "#4E79A7",
    "#F28E2B",
    "#59A14F",
    "#E15759",
    "#76B7B2",
    "#EDC948",
    "#B07AA1",
    "#FF9DA7",
    "#9C755F",
    "#BAB0AC",
    "#1B9E77",
    "#7570B3",
    "#E7298A",
    "#66A61E",
    "#A6761D",
    "#666666",
    "#8DD3C7",
    "#BEBADA",
    "#FB8072",
    "#80B1D3",
    "#FDB462",
    "#B3DE69",
)
CHART_W, CHART_H = 1100, 300
PAD_L, PAD_R, PAD_T, PAD_B = 48, 12, 12, 42


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _colours(report: dict[str, Any]) -> dict[str, str]:
    return {c["cause"]: PALETTE[i % len(PALETTE)] for i, c in enumerate(report["causes"])}


def _label(iso: str, bucket_s: int) -> str:
    when = datetime.fromisoformat(iso)
    if bucket_s >= 86400:
        return when.strftime("%Y-%m-%d")
    return when.strftime("%m-%d %H:%M")


def _nice_max(value: int) -> int:
    """Top of the y axis: four equal integer steps of 1, 2 or 5 times a power of ten."""
    magnitude = 1
    while True:
        for step in (1, 2, 5):
            if 4 * step * magnitude >= value:
                return 4 * step * magnitude
        magnitude *= 10


def render_chart(report: dict[str, Any]) -> str:
    timeline = report["timeline"]
    buckets: list[str] = timeline["buckets"]
    series: dict[str, list[int]] = timeline["series"]
    if not buckets or not series:
        return '<p class="empty">No failures to chart.</p>'
    colours = _colours(report)
    n = len(buckets)
    totals = [sum(s[i] for s in series.values()) for i in range(n)]
    top = _nice_max(max(totals))
    plot_w = CHART_W - PAD_L - PAD_R
    plot_h = CHART_H - PAD_T - PAD_B
    slot = plot_w / n
    bar = max(slot * 0.8, 1.0)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {CHART_W} {CHART_H}" '
        f'width="100%" role="img" aria-label="Failures over time by cause">'
    ]
    for k in range(5):
        value = top * k / 4
        y = PAD_T + plot_h - plot_h * k / 4
        parts.append(
            f'<line x1="{PAD_L}" x2="{CHART_W - PAD_R}" y1="{y:.1f}" y2="{y:.1f}" '
            f'stroke="#dde2ea" stroke-width="1"/>'
            f'<text x="{PAD_L - 6}" y="{y + 4:.1f}" text-anchor="end">{int(value)}</text>'
        )
    label_every = max(1, round(n / 10))
    for i, iso in enumerate(buckets):
        when = _e(_label(iso, timeline["bucket_s"]))
        x = PAD_L + i * slot + (slot - bar) / 2
        base = PAD_T + plot_h
        for cause in (c["cause"] for c in report["causes"]):
            count = series.get(cause, [0] * n)[i]
            if not count:
                continue
            h = plot_h * count / top
            base -= h
            parts.append(
                f'<rect data-cause="{_e(cause)}" x="{x:.1f}" y="{base:.1f}" width="{bar:.1f}" '
                f'height="{h:.1f}" fill="{colours[cause]}"><title>{when}'
                f" · {_e(cause)}: {count}</title></rect>"
            )
        if i % label_every == 0:
            cx = PAD_L + i * slot + slot / 2
            parts.append(
                f'<text x="{cx:.1f}" y="{CHART_H - PAD_B + 16}" text-anchor="middle">{when}</text>'
            )
    parts.append(
        f'<text x="{PAD_L}" y="{CHART_H - 6}">bucket {timeline["bucket_s"]} s · '
        f"bars stack failures (sessions) per cause</text>"
    )
    parts.append("</svg>")
    return "".join(parts)


def _legend(report: dict[str, Any]) -> str:
    colours = _colours(report)
    return "".join(
        f'<button type="button" data-cause="{_e(c["cause"])}"><span class="swatch" '
        f'style="background:{colours[c["cause"]]}"></span>{_e(c["cause"])}</button>'
        for c in report["causes"]
    )


def _kpis(report: dict[str, Any]) -> str:
    span = report["span"]
    items = [
        (report["failures"]["sessions"], "failed sessions"),
        (report["failures"]["events"], "failure log events"),
        (report["records"], "records analysed"),
        (report["correlation"]["sessions_correlated"], "sessions correlated"),
        (len(report["causes"]), "distinct causes"),
        (sum(report["parse_errors"].values()), "lines not parsed"),
    ]
    out = [f'<div class="kpi"><b>{_e(v)}</b><span>{_e(label)}</span></div>' for v, label in items]
    out.append(
        f'<div class="kpi" style="grid-column:span 2"><b style="font-size:14px">'
        f"{_e(span['start'] or '-')}<br>{_e(span['end'] or '-')}</b><span>time span</span></div>"
    )
    return "".join(out)


def _cause_table(report: dict[str, Any]) -> str:
    if not report["causes"]:
        return '<p class="empty">No decryption failures found.</p>'
    colours = _colours(report)
    widest = max(c["share"] for c in report["causes"]) or 1.0
    rows = [
        "<table><tr><th>cause</th><th>category</th><th>sessions</th><th>share</th>"
        '<th style="width:30%"></th></tr>'
    ]
    for c in report["causes"]:
        rows.append(
            f'<tr><td><span class="swatch" style="background:{colours[c["cause"]]}"></span>'
            f'<a href="#cause-{_e(c["cause"])}">{_e(c["cause"])}</a><br>'
            f'<span class="meta">{_e(c["title"])}</span></td><td>{_e(c["category"])}</td>'
            f'<td class="num">{c["count"]}</td><td class="num">{c["share"] * 100:.1f}%</td>'
            f'<td><div class="bar" style="width:{c["share"] / widest * 100:.1f}%;'
            f'background:{colours[c["cause"]]}"></div></td></tr>'
        )
    rows.append("</table>")
    return "".join(rows)


def _mode_table(report: dict[str, Any]) -> str:
    if not report["modes"]:
        return '<p class="empty">No decryption failures found.</p>'
    widest = max(m["share"] for m in report["modes"]) or 1.0
    rows = [
        "<table><tr><th>mode</th><th>sessions</th><th>share</th><th style='width:40%'></th></tr>"
    ]
    for m in report["modes"]:
        rows.append(
            f'<tr><td>{_e(m["mode"])}</td><td class="num">{m["count"]}</td>'
            f'<td class="num">{m["share"] * 100:.1f}%</td>'
            f'<td><div class="bar" style="width:{m["share"] / widest * 100:.1f}%"></div></td></tr>'
        )
    rows.append("</table>")
    return "".join(rows)


def _list(title: str, items: list[dict[str, Any]]) -> str:
    if not items:
        return ""
    lis = "".join(
        f"<li>{_e(i['value'])} <span class='meta'>({i['count']})</span></li>" for i in items
    )
    return f"<div><h4>{_e(title)}</h4><ol>{lis}</ol></div>"


def _details(report: dict[str, Any]) -> str:
    if not report["causes"]:
        return '<p class="empty">Nothing to fix.</p>'
    colours = _colours(report)
    out = []
    for c in report["causes"]:
        modes = ", ".join(f"{m} {n}" for m, n in c["modes"].items())
        fix = "".join(f"<p>{_e(p)}</p>" for p in c["remediation"].splitlines() if p.strip())
        refs = " · ".join(f'<a href="{_e(r)}">{_e(r)}</a>' for r in c["references"])
        tops = "".join(
            _list(title, c[key])
            for title, key in (
                ("servers (SNI / CN)", "top_servers"),
                ("security rules", "top_rules"),
                ("decryption rules", "top_decryption_rules"),
                ("sources", "top_sources"),
                ("firewalls", "top_firewalls"),
            )
        )
        out.append(
            f'<div class="cause" id="cause-{_e(c["cause"])}"><h3><span class="swatch" '
            f'style="background:{colours[c["cause"]]}"></span>{_e(c["title"])}</h3>'
            f'<div class="meta">{_e(c["cause"])} · {_e(c["category"])} · {c["count"]} sessions '
            f"({c['share'] * 100:.1f}%) · modes: {_e(modes)}</div>"
            f'<div class="tops">{tops}</div><div class="fix"><b>What to do</b>{fix}</div>'
            f'<div class="refs meta">References: {refs}</div></div>'
        )
    return "".join(out)


def _dl(items: list[tuple[str, str]]) -> str:
    return "<dl>" + "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in items if v) + "</dl>"


def _rec_items(rec: dict[str, Any]) -> list[tuple[str, str]]:
    ev = rec["evidence"]
    items = [(f"why ({w['cause']}, {w['failures']})", w["text"]) for w in rec["why"]]
    items += [
        ("evidence", f"{ev['failures']} failures from {ev['clients']} clients"),
        ("seen", f"{ev['first_seen']} .. {ev['last_seen']}"),
        ("clients", ", ".join(ev["client_addresses"])),
        ("users", ", ".join(ev["users"])),
        ("firewalls", ", ".join(ev["firewalls"])),
        ("security rules", ", ".join(ev["rules"])),
        ("decryption rules", ", ".join(ev["decryption_rules"])),
        ("sessions", ", ".join(ev["sessions"])),
    ]
    kind = rec["kind"]
    if kind == "exclusion":
        places = "; ".join(
            f"{p['name']} before {p['before'] or '(top)'}" for p in rec["placements"]
        )
        items += [
            ("URL category", ", ".join(rec["url_entries"]) + f" — no-decrypt rule {places}"),
            ("or exclusion", ", ".join(rec["exclude_entries"])),
        ]
    elif kind == "trust-chain":
        items += [
            ("CA", f"{rec['ca'] or '-'} ({rec['variant']}) as {rec['certificate_name'] or '-'}"),
            ("servers", ", ".join(rec["servers"])),
        ]
    elif kind == "forward-trust-ca":
        items.append(
            (
                f"clients ({rec['client_count']})",
                ", ".join(
                    c["address"] + (f" ({', '.join(c['users'])})" if c["users"] else "")
                    for c in rec["clients"]
                ),
            )
        )
    elif kind == "profile":
        items += [
            (f"{s['setting']} {s['value']}", f"{s['failures']} failures: {', '.join(s['servers'])}")
            for s in rec["settings"]
        ]
    elif kind == "inbound":
        items.append(("addresses", ", ".join(rec["addresses"])))
        items += [
            (f"KB check {c['number']}", f"{c['kb']} ({c['failures']}): {c['server_change']}")
            for c in rec["checks"]
        ]
    items.append(("review by", rec["review_by"] or "-"))
    return items


def _recommendations(report: dict[str, Any]) -> str:
    section = report.get("recommendations")
    if not section:
        return '<p class="empty">No recommendations.</p>'
    gates = section["gates"]
    out = [
        f'<p class="meta">Exclusions need at least {gates["min_failures"]} failures from '
        f"{gates['min_clients']} distinct clients over at least {gates['min_span_s']:g} s and "
        f"no decrypted session to the destination; each change is to be reviewed "
        f"{gates['review_days']} days after its last failure.</p>"
    ]
    recs = section["recommendations"]
    if not recs:
        out.append('<p class="empty">No change is recommended.</p>')
    for rec in recs:
        out.append(
            f'<div class="rec" id="rec-{_e(rec["id"])}"><h3>{_e(rec["kind"])}: '
            f'{_e(rec["subject"])}</h3><div class="meta">{_e(rec["title"])}</div>'
            f"{_dl(_rec_items(rec))}</div>"
        )
    if section["held"]:
        rows = "".join(
            f"<tr><td>{_e(h['subject'])}</td><td>{_e(', '.join(h['causes']))}</td>"
            f'<td class="num">{h["failures"]}</td><td class="num">{h["clients"]}</td>'
            f"<td>{_e('; '.join(h['reasons']))}</td></tr>"
            for h in section["held"]
        )
        out.append(
            "<h3>Held back from exclusion (short of the gate)</h3><table><tr><th>destination"
            "</th><th>causes</th><th>failures</th><th>clients</th><th>why not</th></tr>"
            f"{rows}</table>"
        )
    if section["declined"]:
        rows = "".join(
            f"<tr><td>{_e(d['subject'])}</td><td>{_e(d['cause'])}</td>"
            f'<td class="num">{d["failures"]}</td><td>{_e(d["reason"])}</td></tr>'
            for d in section["declined"]
        )
        out.append(
            "<h3>Never excluded</h3><table><tr><th>destination</th><th>cause</th>"
            f"<th>failures</th><th>why</th></tr>{rows}</table>"
        )
    if recs:
        out.append(
            "<details><summary>As PAN-OS configure-mode commands (review before applying)"
            f"</summary><pre>{_e(render_set(section))}</pre></details>"
        )
    return "".join(out)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


def _changes(report: dict[str, Any]) -> str:
    changes = report.get("changes")
    if not changes or not changes["points"]:
        return (
            '<p class="empty">No change points in the logs and none declared '
            "(<code>--change-at TIME[,serial]</code>).</p>"
        )
    out = [
        f'<p class="meta">{changes["before_s"]:g} s before vs {changes["after_s"]:g} s after each '
        f"change (until the firewall's next change); flagged: a cause that appeared, or grew "
        f"{changes['growth_factor']:g} times with at least {changes['min_failures']} failures "
        "after.</p>"
    ]
    for p in changes["points"]:
        before, after = p["before"], p["after"]
        basis = "share of TLS sessions" if p["basis"] == "share" else "failures per hour"
        rows = [
            "<table><tr><th>cause</th><th>before</th><th>after</th><th>growth</th><th></th></tr>"
        ]
        for c in p["causes"]:
            b, a = c["before"], c["after"]
            flag = f'<span class="flag">{_e(c["flag"])}</span>' if c["flag"] else ""
            growth = f"x{c['growth']:.1f}" if c["growth"] else ""
            rows.append(
                f"<tr><td>{_e(c['cause'])}</td><td class=num>{b['failures']} ({_pct(b['share'])})"
                f"</td><td class=num>{a['failures']} ({_pct(a['share'])})</td>"
                f"<td class=num>{growth}</td><td>{flag}</td></tr>"
            )
        rows.append("</table>")
        merged = f" (x{p['merged']})" if p["merged"] > 1 else ""
        out.append(
            f'<div class="cause"><h3>{_e(p["time"])} · {_e(p["firewall"])} · {_e(p["kind"])}'
            f"{merged}</h3><div class=meta>{_e(p['summary'])}</div>"
            f"<div class=meta>TLS sessions {before['tls_sessions']} → {after['tls_sessions']}; "
            f"failure rate {_pct(before['failure_rate'])} → {_pct(after['failure_rate'])}; "
            f"compared by {basis}"
            + ("" if before["covered_s"] else "; no logs of this firewall before it")
            + "</div>"
            + ("".join(rows) if p["causes"] else "")
            + "</div>"
        )
    return "".join(out)


def _coverage(report: dict[str, Any]) -> str:
    cov = report.get("coverage")
    if not cov or not cov["tls_sessions"]:
        return (
            '<p class="empty">No TLS session ends or DECRYPTION logs that say whether the '
            "session was decrypted.</p>"
        )
    out = [
        f'<div class="kpis"><div class="kpi"><b>{_pct(cov["share_decrypted"])}</b><span>of '
        f"{cov['tls_sessions']} TLS sessions decrypted</span></div><div class=kpi><b>"
        f"{cov['not_decrypted']}</b><span>not decrypted</span></div></div>"
    ]
    for title, key in (
        ("by firewall", "by_firewall"),
        ("by security rule", "by_rule"),
        ("by zone pair", "by_zones"),
        ("by application", "by_application"),
    ):
        rows = "".join(
            f"<tr><td>{_e(r['value'])}</td><td class=num>{r['sessions']}</td>"
            f"<td class=num>{r['decrypted']}</td><td class=num>{_pct(r['share_decrypted'])}</td>"
            f'<td style="width:30%"><div class="bar" '
            f'style="width:{r["share_decrypted"] * 100:.1f}%"></div></td></tr>'
            for r in cov[key]
        )
        out.append(
            f"<h4>{_e(title)}</h4><table><tr><th></th><th>sessions</th><th>decrypted</th>"
            f"<th>share</th><th></th></tr>{rows}</table>"
        )
    for title, key in (
        ("Undecrypted destinations by sessions", "undecrypted_by_sessions"),
        ("Undecrypted destinations by bytes", "undecrypted_by_bytes"),
    ):
        rows = "".join(
            f"<tr><td>{_e(r['destination'])}</td><td class=num>{r['sessions']}</td>"
            f"<td class=num>{r['bytes']}</td></tr>"
            for r in cov[key]
        )
        out.append(
            f"<h4>{_e(title)}</h4><table><tr><th>destination</th><th>sessions</th>"
            f"<th>bytes</th></tr>{rows}</table>"
        )
    return "".join(out)


def _certificates(report: dict[str, Any]) -> str:
    certs = report.get("certificates")
    if not certs or not certs["expiring"]:
        seen = certs["seen"] if certs else 0
        days = certs["warn_days"] if certs else 30
        return f'<p class="empty">None expires within {days} days ({seen} certificates seen).</p>'
    rows = []
    for c in certs["expiring"]:
        left = c.get("days_left")
        left_text = "unknown" if left is None else ("expired" if left <= 0 else f"{left}")
        servers = ", ".join(_e(s["value"]) for s in c.get("servers", ()))
        rows.append(
            f"<tr><td>{_e(c['role'])}</td><td>{_e(c['subject'])}<br><span class=meta>"
            f"{_e(c.get('issuer', ''))}</span></td><td>{_e(c['not_after'])}</td>"
            f"<td class=num>{_e(left_text)}</td><td class=num>{_e(c.get('sessions', '-'))}</td>"
            f"<td>{servers}</td></tr>"
        )
    return (
        f'<p class="meta">Expiring within {certs["warn_days"]} days, or expired; days left at '
        "the time of the last log that showed the certificate.</p><table><tr><th>role</th>"
        "<th>certificate</th><th>not after</th><th>days left</th><th>sessions</th>"
        f"<th>servers</th></tr>{''.join(rows)}</table>"
    )


def render_html(report: dict[str, Any], *, sources: list[str] | None = None) -> str:
    subtitle = (
        f"{report['failures']['sessions']} failed sessions in {report['records']} records"
        + (f" from {', '.join(sources)}" if sources else "")
    )
    values = {
        "subtitle": _e(subtitle),
        "kpis": _kpis(report),
        "chart": render_chart(report),
        "legend": _legend(report),
        "cause_table": _cause_table(report),
        "mode_table": _mode_table(report),
        "details": _details(report),
        "recommendations": _recommendations(report),
        "changes": _changes(report),
        "coverage": _coverage(report),
        "certificates": _certificates(report),
        "version": _e(__version__),
    }
    page = REPORT_TEMPLATE.read_text(encoding="utf-8")
    for key, value in values.items():
        page = page.replace("{{" + key + "}}", value)
    return page
