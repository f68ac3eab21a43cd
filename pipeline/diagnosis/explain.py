"""Render diagnoses for a person (``decryptscope diagnose``): the verdict, why, what to do."""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from pipeline.diagnosis.catalogue import Catalogue
from pipeline.diagnosis.model import Diagnosis

WIDTH = 96
# Fields shown as context under the verdict when the records have them.
CONTEXT = (
    ("session_end_reason", "end reason"),
    ("tracker_stage_firewall", "tracker stage firewall"),
    ("tracker_stage_l7proc", "tracker stage l7proc"),
    ("proxy_type", "proxy type"),
    ("err_index", "error index"),
    ("error", "error"),
    ("tls_version", "TLS version"),
    ("sni", "SNI"),
    ("cn", "certificate CN"),
    ("notafter", "certificate not after"),
)


def _fmt(value: Any) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def verdict(
    record: Mapping[str, Any],
    diagnosis: Diagnosis | None,
    catalogue: Catalogue,
    related: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """The JSON form of one verdict."""
    out: dict[str, Any] = {
        "type": record.get("type"),
        "serial": record.get("serial"),
        "sessionid": record.get("sessionid"),
        "failure": diagnosis is not None,
        "joined": [r.get("type") for r in related],
        "title": None,
        "diagnosis": None,
    }
    if diagnosis is not None:
        out["title"] = catalogue.causes[diagnosis.cause].title
        out["diagnosis"] = diagnosis.as_dict()
    return out


def _endpoint(address: Any, port: Any) -> str:
    """``address:port``, with an IPv6 address in brackets (RFC 3986 host syntax) so that the
    port cannot be read as the address's last group."""
    host = address or "?"
    if ":" in str(host):
        host = f"[{host}]"
    return f"{host}:{'?' if port is None else port}"


def _session_line(record: Mapping[str, Any]) -> str:
    parts = [f"{record.get('type', '?')} log"]
    if record.get("sessionid") is not None:
        parts.append(f"session {record['sessionid']}")
    src, dst = record.get("src"), record.get("dst")
    if src or dst:
        parts.append(
            f"{_endpoint(src, record.get('sport'))} -> {_endpoint(dst, record.get('dport'))}"
        )
    for key, label in (("app", "app"), ("rule", "rule"), ("serial", "firewall")):
        if record.get(key):
            parts.append(f"{label} {record[key]}")
    return " | ".join(parts)


def _wrap(text: str, indent: str) -> list[str]:
    lines: list[str] = []
    for para in text.splitlines():
        if not para:
            lines.append("")
            continue
        hang = indent + ("   " if para[:2].rstrip(".").isdigit() else "")
        lines.extend(
            textwrap.wrap(para, WIDTH, initial_indent=indent, subsequent_indent=hang) or [indent]
        )
    return lines


def render_text(
    record: Mapping[str, Any],
    diagnosis: Diagnosis | None,
    catalogue: Catalogue,
    related: Sequence[Mapping[str, Any]] = (),
) -> str:
    lines = [_session_line(record)]
    if related:
        lines.append("joined with: " + ", ".join(str(r.get("type")) for r in related))
    if diagnosis is None:
        lines.append("")
        lines.append("Verdict: not a decryption failure.")
        seen = [
            f"{label} = {_fmt(record[k])}"
            for k, label in CONTEXT
            if record.get(k) not in (None, "")
        ]
        if seen:
            lines.append("  (" + "; ".join(seen) + ")")
        return "\n".join(lines) + "\n"
    cause = catalogue.causes[diagnosis.cause]
    lines += [
        "",
        f"Verdict: {cause.title}",
        f"  cause {diagnosis.cause}  |  category {diagnosis.category}  |  mode {diagnosis.mode}"
        f"  |  confidence {diagnosis.confidence:.2f}",
        "",
        "Why (evidence):",
    ]
    shown = set()
    for item in diagnosis.evidence:
        shown.add(item["field"])
        lines.append(f"  - {item['field']} = {item['value']!r}  (from the {item['source']} record)")
    context = []
    for key, label in CONTEXT:
        if key in shown:
            continue
        for rec in (record, *related):
            if rec.get(key) not in (None, ""):
                context.append(f"  - {label}: {_fmt(rec[key])}  ({rec.get('type')})")
                break
    if context:
        lines.append("Also seen:")
        lines.extend(context)
    lines += ["", "What to do:"]
    lines.extend(_wrap(diagnosis.remediation, "  "))
    lines += ["", "References:"]
    lines.extend(f"  - {ref}" for ref in diagnosis.references)
    return "\n".join(lines) + "\n"
