"""PAN-OS CSV log body -> record, by the layout of its log type and release."""

from __future__ import annotations

import re
import socket
from collections.abc import Callable
from datetime import tzinfo
from typing import NamedTuple

from pipeline.errors import ConfigError, ParseError
from pipeline.panos.csv_line import split_csv
from pipeline.panos.identity import GOOD_SERIALS as _GOOD_SERIALS
from pipeline.panos.identity import check_record, check_unreadable, stamp_agrees
from pipeline.panos.layouts import (
    SKIP,
    Layout,
    common_layout,
    config_versions,
    layout_variants,
    layouts,
    log_types,
)
from pipeline.panos.values import (
    HEX_MAX,
    INT_MAX,
    INT_MIN,
    known_offsets,
    line_zone,
    time_cache,
    time_caches,
    to_ip,
    to_isotime,
    to_time,
)

_LOG_TYPE = re.compile(r"[A-Za-z][A-Za-z0-9_\-]{1,31}")
# A release written out ("10.2") where PAN-OS writes its config version number (Strata
# Logging Service's CSV forwarding).
_RELEASE = re.compile(r"\d{1,2}\.\d{1,2}")

_LAYOUTS = layouts()
_VARIANTS = layout_variants()
_LOG_TYPES = log_types()
_COMMON = common_layout()
_VERSIONS = config_versions()
# Where the log type and config version sit: from the columns every log type shares.
_HEADER_COLUMNS = len(_COMMON.names)
_TYPE_AT = _COMMON.names.index("type")
_CONFIG_AT = _COMMON.names.index("config_ver")
# (log type, config version) -> (release, layout length); filled as lines arrive.
_CHOICE: dict[tuple[str, str], tuple[str, int] | None] = {}


def _choose(layout: Layout, config_ver: str, count: int) -> tuple[str, int]:
    key = (layout.log_type, config_ver)
    choice = _CHOICE.get(key, False)
    if choice is False:
        release = _VERSIONS.get(config_ver)
        if release is None and _RELEASE.fullmatch(config_ver):
            release = config_ver
        choice = (release, layout.length_for(release)) if release is not None else None
        if len(_CHOICE) < 4096:
            _CHOICE[key] = choice
    if choice is None:
        return layout.version_for_count(count)
    return choice


def _bad(bad: dict[str, str] | None, name: str, value: str) -> dict[str, str]:
    if bad is None:
        bad = {}
    bad[name] = value
    return bad


# (row, serial -> zone, read the line's own zone?) -> (record, unreadable values or None)
Builder = Callable[..., tuple[dict, dict | None]]
_FAILS = "(ValueError, OverflowError)"
# Most int columns hold small numbers written the canonical way (counts, lengths, flags
# levels, well-known ports, key sizes): a lookup costs a quarter of int(); others call int().
_SMALL_INTS: dict[str, int] = {str(i): i for i in range(4097)}


def _to_int(on_failure: str, *, wide_as_text: bool = True) -> list[str]:
    """Source that sets ``x`` to the integer in ``v`` (small ones from a table), running
    ``on_failure`` when ``v`` is not one; beyond 64 bits ``x`` is the text itself."""
    wide = (
        ["                if not _INT_MIN <= x <= _INT_MAX:", "                    x = v"]
        if wide_as_text
        else []
    )
    return [
        "        x = _small_int(v)",
        "        if x is None:",
        "            try:",
        "                x = _int(v)",
        *wide,
        f"            except {_FAILS}:",
        f"                {on_failure}",
    ]


def _column_code(i: int, name: str, kind: str) -> list[str]:
    """Straight-line code for column ``i``: skipped when empty, converted inline (no converter
    call per column on the common path), set aside in ``bad`` when unreadable."""
    key = repr(name)
    if kind == "str":
        return [f"    v = row[{i}]", "    if v:", f"        rec[{key}] = v"]
    reject = f"bad = _bad(bad, {key}, v)"
    src = [f"    v = row[{i}]", "    if v:"]
    if kind == "hex":
        src += [
            "        try:",
            "            x = _int(v, 16)",
            f"            rec[{key}] = x if 0 <= x <= _HEX_MAX else v",
            f"        except {_FAILS}:",
            f"            {reject}",
        ]
    elif kind == "int":
        src += [
            *_to_int(reject),
            "        if x is not None:",
            f"            rec[{key}] = x",
        ]
    elif kind == "port":
        src += [
            *_to_int("x = -1", wide_as_text=False),
            "        if 0 <= x <= 65535:",
            f"            rec[{key}] = x",
            "        else:",
            f"            {reject}",
        ]
    elif kind == "ip":
        # inet_pton accepts exactly the dotted quads to_ip accepts as written, at a fraction
        # of the cost; IPv6 and anything odd go through to_ip.
        src += [
            "        try:",
            "            _pton(_AF_INET, v)",
            f"            rec[{key}] = v",
            "        except (OSError, ValueError):",
            "            try:",
            f"                rec[{key}] = _ip(v, tz)",
            f"            except {_FAILS}:",
            f"                {reject}",
        ]
    elif kind == "time":
        # Most times of a stream repeat: look in the zone's cache before calling to_time.
        src += [
            "        x = times_get(v)",
            "        if x is None:",
            "            try:",
            "                x = _time(v, tz)",
            f"            except {_FAILS}:",
            f"                {reject}",
            "        if x is not None:",
            f"            rec[{key}] = x",
        ]
    elif kind == "isotime":
        src += [
            "        try:",
            "            x = _isotime(v, tz)",
            f"        except {_FAILS}:",
            "            x = None",
            f"            {reject}",
            "        if x is not None:",
            f"            rec[{key}] = x",
        ]
    else:
        raise ConfigError(f"no conversion for column type {kind!r}")
    return src


def compile_builder(layout: Layout, width: int | None = None) -> Builder:
    """Compile straight-line code that turns a row of ``width`` columns (default: the whole
    layout) into a typed record: empty columns are skipped, values a converter rejects are set
    aside. (A loop over the columns with a converter lookup each costs about twice as much
    per event; building the dict in C first and retyping costs more than this, as every typed
    column is then written twice.)"""
    names = layout.names
    if "serial" not in names:
        raise ConfigError(
            f"{layout.source}: a layout needs a serial column (time zone per firewall)"
        )
    columns = layout.columns[: len(names) if width is None else width]
    src = ["def build(row, tz_of, line_zone=True):", "    rec = {}", "    bad = None"]
    serial = f"tz_of(row[{names.index('serial')}] or None)"
    stamp = next((i for i, c in enumerate(columns) if c.name == "high_res_timestamp"), None)
    if stamp is None:
        src.append(f"    tz = {serial}")
    else:
        # The line's own UTC offset (its High Resolution Timestamp) is the firewall's zone for
        # every local time of the line; the settings' zone only when the line carries none.
        src += [
            f"    v = row[{stamp}]",
            "    tz = None",
            '    if line_zone and v[10:11] == "T":',
            "        tz = _offsets_get(v[-6:]) or _line_zone(v)",
            "    if tz is None:",
            f"        tz = {serial}",
        ]
    if any(c.type == "time" for c in columns):
        src += [
            "    times = _time_caches_get(tz)",
            "    times_get = (times if times is not None else _time_cache(tz)).get",
        ]
    for i, col in enumerate(columns):
        if col.name != SKIP and col.type != "skip":
            src += _column_code(i, col.name, col.type)
    src.append("    return rec, bad")
    namespace = {
        "_bad": _bad,
        "_int": int,
        "_small_int": _SMALL_INTS.get,
        "_pton": socket.inet_pton,
        "_AF_INET": socket.AF_INET,
        "_ip": to_ip,
        "_time": to_time,
        "_isotime": to_isotime,
        "_time_cache": time_cache,
        "_time_caches_get": time_caches().get,
        "_line_zone": line_zone,
        "_offsets_get": known_offsets().get,
        "_INT_MIN": INT_MIN,
        "_INT_MAX": INT_MAX,
        "_HEX_MAX": HEX_MAX,
    }
    exec(compile("\n".join(src), f"<csv builder {layout.log_type}>", "exec"), namespace)
    return namespace["build"]


# (log type, row width) -> builder. A row shorter than the layout (an older release, or a
# truncated line) gets a builder for exactly its width, so nothing is padded or read past
# its end. Widths are bounded by the layouts, so this stays small.
_BUILDERS: dict[tuple[str, int], Builder] = {}


def _builder(layout: Layout, width: int) -> Builder:
    key = (layout.source.stem, width)
    build = _BUILDERS.get(key)
    if build is None:
        build = _BUILDERS[key] = compile_builder(layout, width)
    return build


for _layout in (*_LAYOUTS.values(), *(v for vs in _VARIANTS.values() for v in vs)):
    _builder(_layout, len(_layout.names))


def _ports(layout: Layout) -> frozenset[str]:
    return frozenset(c.name for c in layout.columns if c.type == "port")


class _Plan(NamedTuple):
    """How to read a line, the same for every line with its (log type text, config version,
    column count): one cache lookup per line instead of three."""

    log_type: str
    release: str
    expected: int  # columns of the release's layout (fewer: truncated)
    total: int  # columns of the whole layout (more: extra)
    build: Builder
    ports: frozenset[str]
    stamp_at: int  # column of the High Resolution Timestamp (-1: none)
    # Log types with more than one layout: (column of Action Flags, plan) per layout, the
    # first whose column holds "0x..." wins; None for the others.
    choices: tuple[tuple[int, _Plan], ...] | None = None


_PLANS: dict[tuple[str, str, int], _Plan] = {}
_PLANS_MAX = 4096


def _plan(row: list[str], count: int) -> _Plan:
    """Checks the columns every log type shares (raising ParseError), then the plan."""
    if count <= _TYPE_AT or not _LOG_TYPE.fullmatch(row[_TYPE_AT]):
        raise ParseError("not a PAN-OS CSV log (no log type in column 4)", error_type="not_panos")
    if count < _HEADER_COLUMNS:
        raise ParseError(
            f"{count} columns: a PAN-OS CSV log has at least {_HEADER_COLUMNS}",
            error_type="too_few_columns",
        )
    known = _LOG_TYPES.get(row[_TYPE_AT].upper())
    if known is None or known.name not in _LAYOUTS:
        raise ParseError(
            f"log type {row[_TYPE_AT][:32]!r} is not one PAN-OS writes",
            error_type="unknown_log_type",
        )
    log_type = known.name
    plan = _layout_plan(_LAYOUTS[log_type], log_type, row[_CONFIG_AT], count)
    variants = _VARIANTS.get(log_type)
    if variants:
        plans = [plan] + [_layout_plan(v, log_type, row[_CONFIG_AT], count) for v in variants]
        choices = tuple(
            (p_layout.names.index("actionflags"), p)
            for p_layout, p in zip((_LAYOUTS[log_type], *variants), plans, strict=True)
        )
        plan = plan._replace(choices=choices)
    if len(_PLANS) >= _PLANS_MAX:
        _PLANS.clear()
    _PLANS[row[_TYPE_AT], row[_CONFIG_AT], count] = plan
    return plan


def _layout_plan(layout: Layout, log_type: str, config_ver: str, count: int) -> _Plan:
    release, expected = _choose(layout, config_ver, count)
    total = len(layout.names)
    stamp_at = (
        layout.names.index("high_res_timestamp") if "high_res_timestamp" in layout.names else -1
    )
    return _Plan(
        log_type,
        release,
        expected,
        total,
        _builder(layout, min(count, total)),
        _ports(layout),
        stamp_at,
    )


def _pick(plan: _Plan, row: list[str]) -> _Plan:
    """The plan of the layout whose Action Flags column holds a hex value (the first one when
    none does)."""
    count = len(row)
    for at, choice in plan.choices or ():
        if at < count and row[at].startswith("0x"):
            return choice
    return plan


def parse_csv(body: str, tz_of: Callable[[str | None], tzinfo]) -> dict:
    row = split_csv(body)
    count = len(row)
    plan = None
    if count >= _HEADER_COLUMNS:
        plan = _PLANS.get((row[_TYPE_AT], row[_CONFIG_AT], count))
    if plan is None:
        plan = _plan(row, count)
    if plan.choices is not None:
        plan = _pick(plan, row)
    log_type, release, expected, total, build, ports, stamp_at, _ = plan
    extra = None
    if count > total:
        extra = row[total:]
        del row[total:]
    rec, invalid = build(row, tz_of)
    get = rec.get
    stamp, generated = get("high_res_timestamp"), get("time_generated")
    if (
        stamp is not None
        and generated is not None
        # the common answer first: the stamp is on the generated time's day
        and (
            stamp.day != generated.day
            or stamp.month != generated.month
            or stamp.year != generated.year
        )
        and not stamp_agrees(stamp, generated)
    ):
        # A stamp that is not this event's time: read the line again in the settings' zone.
        rec, invalid = build(row, tz_of, False)
        rec.pop("high_res_timestamp", None)
        if invalid is None:
            invalid = {}
        invalid["high_res_timestamp"] = row[stamp_at]
    rec["type"] = log_type
    if extra is not None:
        rec["_extra"] = extra
    if count < expected:
        rec["_truncated"] = True
    if invalid is not None:
        check_unreadable(invalid, ports)
        rec["_invalid"] = invalid
    serial, received = get("serial"), get("receive_time")
    # Spelt out for the common case (a serial seen before, times read from one text).
    if (serial is not None and serial not in _GOOD_SERIALS) or received is not generated:
        check_record(rec)
    rec["_format"] = "csv"
    rec["_layout"] = release
    return rec
