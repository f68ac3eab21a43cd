"""PAN-OS logs in LEEF 1.0 / 2.0:
``LEEF:1.0|Palo Alto Networks|<product>|<version>|<event id>|k=v<TAB>k=v`` (1.0: tab, or "|"
as in PAN-OS's QRadar format) and ``LEEF:2.0|...|<event id>|<delimiter>|k=v...``."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import tzinfo

from pipeline.errors import ParseError
from pipeline.panos.keyvalue import build_record
from pipeline.panos.layouts import key_map

_LOG_TYPE = re.compile(r"[A-Z][A-Z_\-]{2,}")
_HEX_DELIM = re.compile(r"(?:0?x|\\x)([0-9A-Fa-f]{2,4})")


def _delimiter(spec: str) -> str:
    m = _HEX_DELIM.fullmatch(spec)
    if m is not None:
        return chr(int(m.group(1), 16))
    return spec[:1] or "\t"


def parse_leef(body: str, tz_of: Callable[[str | None], tzinfo]) -> dict:
    parts = body.split("|", 5)
    if len(parts) < 6:
        raise ParseError("LEEF header has fewer than 6 fields", error_type="too_few_columns")
    version, _vendor, product, product_version, event_id, attrs = parts
    if version.startswith("LEEF:2"):
        spec, sep, rest = attrs.partition("|")
        if sep and len(spec) <= 4:
            delim, attrs = _delimiter(spec), rest
        else:
            delim = "\t"
    else:
        delim = "\t" if "\t" in attrs else "|"
    pairs = []
    for item in attrs.split(delim):
        key, eq, value = item.partition("=")
        if eq:
            pairs.append((key.strip(), value))
    rec = build_record(pairs, key_map("leef"), tz_of, fallback_keys=key_map("json"))
    if "type" not in rec and _LOG_TYPE.fullmatch(event_id):
        rec["type"] = event_id
    if "type" not in rec:
        raise ParseError("LEEF message names no PAN-OS log type", error_type="not_panos")
    rec["_format"] = "leef"
    rec["_layout"] = f"leef:{product}/{product_version}"
    return rec
