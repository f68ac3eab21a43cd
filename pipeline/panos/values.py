"""Typed converters for column values: one function per layout type, compiled once.

Every converter has the signature ``(value: str, tz: tzinfo) -> object`` and raises
``ValueError`` on a value it cannot read (the caller keeps the raw text aside). Returning
``None`` means "no value" (e.g. ``null``, or epoch 0 for an absent certificate date).

Integers outside the signed 64-bit range (Elasticsearch's ``long``; JSON encoders refuse
wider ones) are kept as their text, so that one oversized counter does not cost the event."""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pipeline.errors import ConfigError

Converter = Callable[[str, tzinfo], object]

_IPV4 = re.compile(
    r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?:\.(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}"
)
_OFFSET = re.compile(r"(?:UTC|GMT)?([+-])(\d{1,2}):?(\d{2})?")
_EPOCH_MS = 100_000_000_000  # beyond this an epoch number is in milliseconds
INT_MIN, INT_MAX = -(2**63), 2**63 - 1
# Bit fields (Action Flags 0x8000000000000000 = forwarded to Panorama) are unsigned 64-bit.
HEX_MAX = 2**64 - 1
_pton = socket.inet_pton
_AF_INET = socket.AF_INET

# Other renderings: Sekoia/older CSV ("9/16/19 10:00"), CEF ("Mar 01 2021 20:35:54"),
# "show session id" ("Wed Apr 17 14:04:30 2019"), fractional PAN-OS time.
_TIME_FORMATS = (
    "%m/%d/%y %H:%M",
    "%m/%d/%y %H:%M:%S",
    "%b %d %Y %H:%M:%S",
    "%a %b %d %H:%M:%S %Y",
    "%Y/%m/%d %H:%M:%S.%f",
)

_TZ_CACHE: dict[str, tzinfo] = {}
# Logs of one second share their time text: caching the parsed value saves most of the work.
# One bounded cache per zone, so that a lookup hashes only the text (whose hash str caches).
_TIME_CACHES: dict[tzinfo, dict[str, datetime]] = {}
_TIME_CACHE_MAX = 8192
_ZONES_MAX = 64


def get_tz(name: str) -> tzinfo:
    """A time zone by IANA name ("Europe/Paris"), "UTC", or fixed offset ("+08:00")."""
    tz = _TZ_CACHE.get(name)
    if tz is not None:
        return tz
    m = _OFFSET.fullmatch(name)
    if m is not None:
        sign, hh, mm = m.groups()
        delta = timedelta(hours=int(hh), minutes=int(mm or 0))
        tz = timezone(-delta if sign == "-" else delta)
    elif name.upper() in ("UTC", "Z", "GMT"):
        tz = UTC
    else:
        try:
            tz = ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ConfigError(f"unknown time zone {name!r}") from exc
    _TZ_CACHE[name] = tz
    return tz


_LINE_OFFSETS: dict[str, tzinfo] = {"+00:00": UTC}
_LINE_OFFSET = re.compile(r"[+-]\d{2}:\d{2}")


def line_zone(stamp: str) -> tzinfo | None:
    """The UTC offset an ISO-8601 time carries (``...T15:42:44.845-08:00`` -> UTC-8), as a
    zone shared by every time of that offset; None when it carries none."""
    if stamp[10:11] != "T":
        return None
    tail = stamp[-6:]
    tz = _LINE_OFFSETS.get(tail)
    if tz is not None:
        return tz
    if stamp[-1:] == "Z":
        return UTC
    if _LINE_OFFSET.fullmatch(tail) is None:
        return None
    hours, minutes = int(tail[1:3]), int(tail[4:6])
    if hours > 23 or minutes > 59:
        return None
    delta = timedelta(hours=hours, minutes=minutes)
    tz = timezone(-delta if tail[0] == "-" else delta)
    if len(_LINE_OFFSETS) < 256:
        _LINE_OFFSETS[tail] = tz
    return tz


def known_offsets() -> dict[str, tzinfo]:
    """The offsets ``line_zone`` has met ("-08:00" -> zone), for a lookup without a call."""
    return _LINE_OFFSETS


def to_int(value: str, tz: tzinfo) -> int | str:
    n = int(value)
    return n if INT_MIN <= n <= INT_MAX else value


def to_port(value: str, tz: tzinfo) -> int:
    port = int(value)
    if not 0 <= port <= 65535:
        raise ValueError(f"port out of range: {port}")
    return port


def to_hex(value: str, tz: tzinfo) -> int | str:
    n = int(value, 16)
    return n if 0 <= n <= HEX_MAX else value


def to_ip(value: str, tz: tzinfo) -> str:
    try:
        # inet_pton accepts exactly the dotted quads the pattern below accepts (ASCII digits,
        # no leading zero) at a third of its cost; anything else takes the slow path.
        _pton(_AF_INET, value)
        return value
    except (OSError, ValueError):
        pass
    if _IPV4.fullmatch(value):
        return value
    if ":" in value:
        # IPv6 (with or without %zone): validated, written in its canonical short form.
        return ipaddress.ip_address(value.split("%", 1)[0]).compressed
    raise ValueError(f"not an IP address: {value!r}")


def _local_time(value: str, tz: tzinfo) -> datetime:
    if len(value) == 19 and value[4] == "/" and value[13] == ":":
        return datetime(
            int(value[0:4]),
            int(value[5:7]),
            int(value[8:10]),
            int(value[11:13]),
            int(value[14:16]),
            int(value[17:19]),
            tzinfo=tz,
        )
    if _looks_iso(value):
        return _iso_time(value, tz)
    if value.isdigit():
        n = int(value)
        if n == 0:
            raise _Absent
        try:
            return datetime.fromtimestamp(n / 1000 if n >= _EPOCH_MS else n, UTC)
        except (OverflowError, OSError) as exc:  # beyond the platform's time range
            raise ValueError(f"epoch time out of range: {value!r}") from exc
    head, _, zone = value.rpartition(" ")
    if head and zone.isalpha() and 2 <= len(zone) <= 5:
        # CEF-formatted times end in a zone abbreviation ("Jun 02 2016 11:31:20 GMT"); only
        # GMT/UTC are unambiguous, others are read in the firewall's zone.
        value = head
        if zone.upper() in ("GMT", "UTC", "Z"):
            tz = UTC
    for fmt in _TIME_FORMATS:
        try:
            return datetime.strptime(value, fmt).replace(tzinfo=tz)
        except ValueError:
            continue
    raise ValueError(f"not a time: {value!r}")


class _Absent(Exception):
    """A time value that means "no time" (epoch 0)."""


def time_caches() -> dict[tzinfo, dict[str, datetime]]:
    """Zone -> its time cache, for a lookup without a call (``time_cache`` makes new ones)."""
    return _TIME_CACHES


def time_cache(tz: tzinfo) -> dict[str, datetime]:
    """The (bounded) cache of times read in ``tz``: text -> datetime. The record builders look
    times up in it directly and call ``to_time`` only on a miss."""
    cache = _TIME_CACHES.get(tz)
    if cache is None:
        if len(_TIME_CACHES) >= _ZONES_MAX:
            _TIME_CACHES.clear()
        cache = _TIME_CACHES[tz] = {}
    return cache


def to_time(value: str, tz: tzinfo) -> datetime | None:
    """Firewall-local time "YYYY/MM/DD HH:MM:SS" (or another PAN-OS rendering) in ``tz``."""
    cache = _TIME_CACHES.get(tz)
    if cache is None:
        cache = time_cache(tz)
    dt = cache.get(value)
    if dt is not None:
        return dt
    try:
        dt = _local_time(value, tz)
    except _Absent:
        return None
    if len(cache) >= _TIME_CACHE_MAX:
        cache.clear()
    cache[value] = dt
    return dt


def _looks_iso(value: str) -> bool:
    return value[:1].isdigit() and value[4:5] == "-" and "T" in value


def _iso_time(value: str, tz: tzinfo) -> datetime:
    """An ISO-8601 time (ValueError when it is not a valid one, e.g. month 13, hour 25); a
    naive value is taken in ``tz``."""
    dt = datetime.fromisoformat(value)
    return dt if dt.tzinfo is not None else dt.replace(tzinfo=tz)


def to_isotime(value: str, tz: tzinfo) -> datetime | None:
    """ISO-8601 with offset (high resolution timestamp); a naive value is taken in ``tz``.
    CEF writes the high-resolution time as "Jul 25 2019 23:30:12": what is not ISO-shaped is
    read as a PAN-OS time; an ISO-shaped text that is not a valid time is a ValueError."""
    try:
        dt = datetime.fromisoformat(value)
    except ValueError:
        if _looks_iso(value):
            raise
        return to_time(value, tz)
    return dt if dt.tzinfo is not None else dt.replace(tzinfo=tz)


CONVERTERS: dict[str, Converter | None] = {
    "str": None,  # kept as is: no call on the hot path
    "skip": None,
    "int": to_int,
    "port": to_port,
    "hex": to_hex,
    "ip": to_ip,
    "time": to_time,
    "isotime": to_isotime,
}


def record_time(record: Mapping[str, Any]) -> datetime | None:
    """The time a record gives of itself: its high-resolution timestamp, else its generated
    time, else its receive time (each only with its UTC offset)."""
    for name in ("high_res_timestamp", "time_generated", "receive_time"):
        value = record.get(name)
        if isinstance(value, datetime) and value.tzinfo is not None:
            return value
    return None
