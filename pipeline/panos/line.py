"""One message -> one record: framing, format detection, the format's parser."""

from __future__ import annotations

from collections.abc import Callable
from datetime import tzinfo

from pipeline.errors import ConfigError, ParseError
from pipeline.panos.cef import parse_cef
from pipeline.panos.csvlog import parse_csv
from pipeline.panos.detect import detect
from pipeline.panos.jsonlog import parse_json
from pipeline.panos.layouts import log_types
from pipeline.panos.leef import parse_leef
from pipeline.panos.session_text import parse_session
from pipeline.panos.values import get_tz
from pipeline.syslog.framing import decode, split

# Longer messages are not PAN-OS logs (the largest real ones are a few KiB).
MAX_MESSAGE = 256 * 1024
_LOG_TYPES = log_types()

_PARSERS: dict[str, Callable[[str, Callable[[str | None], tzinfo]], dict]] = {
    "csv": parse_csv,
    "cef": parse_cef,
    "leef": parse_leef,
    "json": parse_json,
    "session": parse_session,
}


def parse_line(
    line: bytes | str,
    *,
    default_tz: str = "UTC",
    tz_for: Callable[[str], str] | None = None,
) -> dict:
    """One message -> one record, or ``ParseError`` (``error_type`` in PARSE_ERROR_TYPES)."""
    if len(line) > MAX_MESSAGE:
        raise ParseError(
            f"message of {len(line)} bytes exceeds {MAX_MESSAGE}", error_type="oversized"
        )
    try:
        text, replaced = decode(line)
        if not text or text.isspace():
            raise ParseError("empty message", error_type="empty")
        body, host, stime = split(text)
        if body.startswith("\ufeff"):
            body = body[1:]
        resolver = _RESOLVERS.get((default_tz, tz_for)) or _tz_resolver(default_tz, tz_for)
        # A body that starts with a digit is CSV (detect's answer too), the common case.
        if "0" <= body[:1] <= "9":
            rec = parse_csv(body, resolver)
        else:
            rec = _PARSERS[detect(body)](body, resolver)
            known = _LOG_TYPES.get(rec["type"])
            if known is not None:
                rec["type"] = known.name
    except (ParseError, ConfigError):
        raise
    except Exception as exc:
        # A parser bug on odd input must not stop the stream, nor pass for bad input: its own
        # error type, with the exception class, in the dead letter and the metrics.
        raise ParseError(
            f"internal error: {type(exc).__name__}: {exc}", error_type="internal"
        ) from exc
    if host is not None:
        rec["_host"] = host
    if stime is not None:
        rec["_syslog_time"] = stime
    if replaced:
        rec["_decode_errors"] = True
    rec["_original"] = body
    rec["_message"] = text
    return rec


_RESOLVERS: dict[tuple[str, object], Callable[[str | None], tzinfo]] = {}


def _tz_resolver(
    default_tz: str, tz_for: Callable[[str], str] | None
) -> Callable[[str | None], tzinfo]:
    key = (default_tz, tz_for)
    resolver = _RESOLVERS.get(key)
    if resolver is not None:
        return resolver
    default = get_tz(default_tz)
    if tz_for is None:

        def resolver(serial: str | None) -> tzinfo:
            return default

    else:

        def resolver(serial: str | None) -> tzinfo:
            name = tz_for(serial) if serial else None
            return get_tz(name) if name else default

    if len(_RESOLVERS) < 64:
        _RESOLVERS[key] = resolver
    return resolver
