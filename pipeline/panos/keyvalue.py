"""Records from key/value renderings (CEF, LEEF, JSON): vendor keys are renamed to the CSV
layout's record keys (maps in ``schemas/panos/{cef,leef,json}.csv``) and typed with the same
converters, so every format yields the same record."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import tzinfo

from pipeline.panos.layouts import field_types

# Values that renderings write for "nothing".
_NULLS = frozenset({"", "null", "NULL", "None:None"})


def build_record(
    pairs: Iterable[tuple[str, object]],
    keys: Mapping[str, str],
    tz_of: Callable[[str | None], tzinfo],
    *,
    fallback_keys: Mapping[str, str] | None = None,
) -> dict:
    """Rename and type ``(vendor key, value)`` pairs; unknown keys go to ``_extra`` as
    ``{key: value}``; values a converter rejects go to ``_invalid``."""
    types = field_types()
    raw: dict[str, object] = {}
    extra: dict[str, object] = {}
    for key, value in pairs:
        if value is None or (isinstance(value, str) and value in _NULLS):
            continue
        name = keys.get(key)
        if name is None and fallback_keys is not None:
            name = fallback_keys.get(key)
        if name is None:
            extra[key] = value
        elif name not in raw:
            raw[name] = value
    serial = raw.get("serial")
    tz = tz_of(serial if isinstance(serial, str) else None)
    rec: dict = {}
    invalid: dict[str, str] = {}
    for name, value in raw.items():
        conv = types.get(name)
        if isinstance(value, str):
            text = value
        elif isinstance(value, bool):
            text = str(value).lower()
        else:
            text = str(value)
        if conv is None:
            rec[name] = text
            continue
        try:
            typed = conv(text, tz)
        except (ValueError, OverflowError):
            invalid[name] = text
            continue
        if typed is not None:
            rec[name] = typed
    if "type" in rec:
        rec["type"] = rec["type"].upper()
    if extra:
        rec["_extra"] = extra
    if invalid:
        rec["_invalid"] = invalid
    return rec
