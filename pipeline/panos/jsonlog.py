"""PAN-OS logs as JSON objects (HTTPS forwarding / Strata Logging Service)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import tzinfo

import orjson

from pipeline.errors import ParseError
from pipeline.panos.keyvalue import build_record
from pipeline.panos.layouts import key_map


def parse_json(body: str, tz_of: Callable[[str | None], tzinfo]) -> dict:
    try:
        obj = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ParseError(f"invalid JSON: {exc}", error_type="unknown_format") from exc
    if not isinstance(obj, dict):
        raise ParseError("JSON log is not an object", error_type="not_panos")
    # Nested objects are not part of PAN-OS's flat rendering; keep them unmapped.
    pairs = [(k, v) for k, v in obj.items() if not isinstance(v, dict | list)]
    rec = build_record(pairs, key_map("json"), tz_of)
    if "type" not in rec:
        raise ParseError("JSON log names no PAN-OS log type (LogType)", error_type="not_panos")
    rec["_format"] = "json"
    rec["_layout"] = "json"
    return rec
