"""PAN-OS logs in CEF: ``CEF:0|Palo Alto Networks|<product>|<version>|<a>|<b>|<sev>|k=v k=v``.

On-box CEF puts the subtype then the type in the two header fields; the Strata Logging Service
("LF") forwarder puts the type then the subtype. Whichever is a known upper-case log type wins."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import tzinfo

from pipeline.errors import ConfigError, ParseError
from pipeline.panos.keyvalue import build_record
from pipeline.panos.layouts import key_map
from pipeline.panos.values import get_tz

# A key starts after a space (or the start) and ends at "="; the value runs to the next key.
_KEY = re.compile(r"(?:^| )([A-Za-z0-9_]+)=")
_HEADER_FIELDS = 7
_LOG_TYPE = re.compile(r"[A-Z][A-Z_\-]{2,}")


def _unescape(value: str) -> str:
    if "\\" not in value:
        return value
    return (
        value.replace("\\\\", "\x00").replace("\\=", "=").replace("\\n", "\n").replace("\x00", "\\")
    )


def _split_header(body: str) -> tuple[list[str], str]:
    parts: list[str] = []
    pos = 0
    for _ in range(_HEADER_FIELDS):
        cut = body.find("|", pos)
        while cut > 0 and body[cut - 1] == "\\":
            cut = body.find("|", cut + 1)
        if cut < 0:
            raise ParseError("CEF header has fewer than 8 fields", error_type="too_few_columns")
        parts.append(body[pos:cut].replace("\\|", "|"))
        pos = cut + 1
    return parts, body[pos:]


def parse_extension(ext: str) -> list[tuple[str, str]]:
    pairs: list[tuple[str, str]] = []
    matches = list(_KEY.finditer(ext))
    for i, m in enumerate(matches):
        end = matches[i + 1].start() if i + 1 < len(matches) else len(ext)
        pairs.append((m.group(1), _unescape(ext[m.end() : end].rstrip())))
    return pairs


def parse_cef(body: str, tz_of: Callable[[str | None], tzinfo]) -> dict:
    header, ext = _split_header(body)
    pairs = parse_extension(ext)
    labels = {k[:-5]: v for k, v in pairs if k.endswith("Label")}
    resolved = [(labels.get(k, k), v) for k, v in pairs if not k.endswith("Label")]
    dtz = next((v for k, v in pairs if k == "dtz"), None)
    zone = None
    if dtz:
        try:
            zone = get_tz(dtz)
        except ConfigError:
            zone = None  # a zone name from the message itself: bad data, not bad settings
    if zone is not None:
        rec = build_record(resolved, key_map("cef"), lambda serial: zone)
    else:
        rec = build_record(resolved, key_map("cef"), tz_of)
        if dtz:
            rec.setdefault("_invalid", {})["dtz"] = dtz
    sig, name = header[4], header[5]
    if _LOG_TYPE.fullmatch(sig):
        rec.setdefault("type", sig)
        rec.setdefault("subtype", name)
    elif _LOG_TYPE.fullmatch(name):
        rec.setdefault("type", name)
        rec.setdefault("subtype", sig)
    if "type" not in rec:
        raise ParseError("CEF message names no PAN-OS log type", error_type="not_panos")
    rec["_format"] = "cef"
    rec["_layout"] = f"cef:{header[2]}/{header[3]}"
    return rec
