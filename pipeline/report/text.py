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
        return "\n".join(out) + "\n"
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
    return "\n".join(out) + "\n"
