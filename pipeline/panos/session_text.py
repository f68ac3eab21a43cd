"""``show session id <id>`` CLI output -> one SESSION record.

The output is a "Session <id>" line, a c2s and an s2c flow block (source/dst/proto/ports,
zones in brackets), then "label : value" lines (labels in ``schemas/panos/session.csv``). The
s2c flow is the server's view, so it reveals NAT: its source is the translated destination and
its destination the translated source. Fragments (only the tail of an output) parse as far as
they go."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import tzinfo

from pipeline.errors import ParseError
from pipeline.panos.layouts import session_labels

# What starts an output: the CLI prompt line or the "Session <id>" line.
PROMPT = re.compile(r"\s*(?:\S*>\s*)?show session id (\d+)\s*$")
SESSION_HEAD = re.compile(r"\s*Session\s+(\d+)\s*$")
FLOW_HEAD = re.compile(r"\s*([cs]2[sc]) flow:\s*$")
# A line that belongs to an output (used to group lines of a file into one output).
SESSION_LINE = re.compile(
    r"\s*(?:(?:\S*>\s*)?show session id \d+|Session\s+\d+|[cs]2[sc] flow:"
    r"|[A-Za-z][\w /().\-]*?\s*:(?:\s.*)?|\[?\.{3,}\]?)\s*$"
)
_LABELLED = re.compile(r"\s*([A-Za-z][\w /().\-]*?)\s*:(?:\s+(.*?))?\s*$")
_ADDR_ZONE = re.compile(r"(\S+)(?:\s+\[(.*)\])?")
_PORTS = re.compile(r"\s*sport:\s*(\d+)\s+dport:\s*(\d+)\s*$")
_STATE = re.compile(r"\s*state:\s*(\S+)\s+type:\s*(\S+)\s*$")
_PROTO_NAMES = {
    "1": "icmp",
    "6": "tcp",
    "17": "udp",
    "47": "gre",
    "50": "esp",
    "58": "ipv6-icmp",
    "132": "sctp",
}
_UNKNOWN_USER = frozenset({"", "unknown"})


def looks_like_session(text: str) -> bool:
    first = text.lstrip().split("\n", 1)[0]
    return bool(
        PROMPT.match(first)
        or SESSION_HEAD.match(first)
        or "c2s flow:" in text
        or ("\n" in text.strip() and SESSION_LINE.match(first) and " : " in text)
        or (" : " in first and _LABELLED.match(first) and "," not in first)
    )


def _flow(lines: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in lines:
        m = _PORTS.match(line)
        if m:
            out["sport"], out["dport"] = m.groups()
            continue
        m = _STATE.match(line)
        if m:
            out["state"], out["kind"] = m.groups()
            continue
        label, _, value = line.strip().partition(":")
        value = value.strip()
        if label in ("source", "dst"):
            am = _ADDR_ZONE.match(value)
            if am:
                out[label] = am.group(1)
                if am.group(2):
                    out[label + "_zone"] = am.group(2)
        elif label in ("proto", "src user", "dst user", "pbf rule"):
            out[label] = value
    return out


def parse_session(text: str, tz_of: Callable[[str | None], tzinfo]) -> dict:
    labels = session_labels()
    tz = tz_of(None)
    rec: dict = {"type": "SESSION"}
    extra: list[str] = []
    invalid: dict[str, str] = {}
    flows: dict[str, list[str]] = {}
    current: list[str] | None = None
    for raw in text.splitlines():
        line = raw.rstrip()
        if not line.strip() or line.strip().strip("[].") == "":
            continue
        m = PROMPT.match(line) or SESSION_HEAD.match(line)
        if m:
            rec.setdefault("sessionid", int(m.group(1)))
            current = None
            continue
        m = FLOW_HEAD.match(line)
        if m:
            current = flows.setdefault(m.group(1), [])
            continue
        lm = _LABELLED.match(line)
        # Flow blocks use "label: value"; the summary uses "label : value" (padded).
        if current is not None and lm and " : " not in line:
            current.append(line)
            continue
        current = None
        if lm is None:
            extra.append(line.strip())
            continue
        label = " ".join(lm.group(1).lower().split())
        value = lm.group(2) or ""
        known = labels.get(label)
        if known is None:
            extra.append(line.strip())
            continue
        name, conv = known
        if not value or name in rec:
            continue
        if conv is None:
            rec[name] = value
            continue
        try:
            typed = conv(value, tz)
        except ValueError:
            invalid[name] = value
            continue
        if typed is not None:
            rec[name] = typed
    c2s = _flow(flows.get("c2s", []))
    s2c = _flow(flows.get("s2c", []))
    _apply_flows(rec, c2s, s2c)
    if len(rec) == 1:
        raise ParseError("no 'show session id' fields found", error_type="not_panos")
    if extra:
        rec["_extra"] = extra
    if invalid:
        rec["_invalid"] = invalid
    rec["_format"] = "session"
    rec["_layout"] = "show-session-id"
    return rec


def _apply_flows(rec: dict, c2s: dict[str, str], s2c: dict[str, str]) -> None:
    def put(key: str, value: object) -> None:
        if value not in (None, ""):
            rec[key] = value

    put("src", c2s.get("source"))
    put("dst", c2s.get("dst"))
    put("from", c2s.get("source_zone"))
    put("to", s2c.get("source_zone"))
    proto = c2s.get("proto") or s2c.get("proto")
    if proto:
        rec["proto"] = _PROTO_NAMES.get(proto, proto)
    if c2s.get("sport"):
        rec["sport"] = int(c2s["sport"])
        rec["dport"] = int(c2s["dport"])
    for flow, key in ((c2s, "srcuser"), (c2s, "dstuser")):
        user = flow.get("src user" if key == "srcuser" else "dst user", "")
        if user not in _UNKNOWN_USER:
            rec[key] = user
    if c2s.get("state"):
        rec["session_state"] = c2s["state"]
        rec["session_type"] = c2s["kind"]
    if c2s.get("pbf rule"):
        rec["pbf_rule"] = c2s["pbf rule"]
    # The server answers to the translated address: s2c source != c2s dst means destination NAT.
    if s2c.get("source") and c2s.get("dst") and s2c["source"] != c2s["dst"]:
        rec["natdst"] = s2c["source"]
        if s2c.get("sport"):
            rec["natdport"] = int(s2c["sport"])
    if s2c.get("dst") and c2s.get("source") and s2c["dst"] != c2s["source"]:
        rec["natsrc"] = s2c["dst"]
        if s2c.get("dport"):
            rec["natsport"] = int(s2c["dport"])
