"""PAN-OS CSV log body -> record, by the layout of its log type and release."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import tzinfo

from pipeline.errors import ConfigError, ParseError
from pipeline.panos.csv_line import split_csv
from pipeline.panos.layouts import SKIP, Layout, common_layout, config_versions, layouts
from pipeline.panos.values import to_hex, to_ip, to_isotime, to_port, to_time

_LOG_TYPE = re.compile(r"[A-Za-z][A-Za-z0-9_\-]{1,31}")
_TIME_KEYS = ("time_generated", "receive_time", "high_res_timestamp")

_LAYOUTS = layouts()
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


_CONVERSIONS = {
    "int": "_int",
    "port": "_port",
    "hex": "_hex",
    "ip": "_ip",
    "time": "_time",
    "isotime": "_isotime",
}
Builder = Callable[[list[str], Callable[[str | None], tzinfo]], tuple[dict, dict | None]]


def compile_builder(layout: Layout) -> Builder:
    """Compile, once per layout, straight-line code that turns a full-length row into a typed
    record: empty columns are skipped, values a converter rejects are set aside. (A loop over
    the columns with a converter lookup each costs about twice as much per event.)"""
    names = layout.names
    if "serial" not in names:
        raise ConfigError(
            f"{layout.source}: a layout needs a serial column (time zone per firewall)"
        )
    src = [
        "def build(row, tz_of):",
        "    rec = {}",
        "    bad = None",
        f"    tz = tz_of(row[{names.index('serial')}] or None)",
    ]
    for i, col in enumerate(layout.columns):
        if col.name == SKIP:
            continue
        key = repr(col.name)
        src += [f"    v = row[{i}]", "    if v:"]
        if col.type == "str":
            src.append(f"        rec[{key}] = v")
            continue
        src.append("        try:")
        if col.type == "int":
            src.append(f"            rec[{key}] = _int(v)")
        elif col.type in ("time", "isotime"):
            src += [
                f"            x = {_CONVERSIONS[col.type]}(v, tz)",
                "            if x is not None:",
                f"                rec[{key}] = x",
            ]
        else:
            src.append(f"            rec[{key}] = {_CONVERSIONS[col.type]}(v, tz)")
        src += [
            "        except (ValueError, OverflowError):",
            f"            bad = _bad(bad, {key}, v)",
        ]
    src.append("    return rec, bad")
    namespace = {
        "_bad": _bad,
        "_int": int,
        "_port": to_port,
        "_hex": to_hex,
        "_ip": to_ip,
        "_time": to_time,
        "_isotime": to_isotime,
    }
    exec(compile("\n".join(src), f"<csv builder {layout.log_type}>", "exec"), namespace)
    return namespace["build"]


_BUILDERS: dict[str, Builder] = {t: compile_builder(layout) for t, layout in _LAYOUTS.items()}
_BUILDERS[_COMMON.log_type] = compile_builder(_COMMON)


def parse_csv(body: str, tz_of: Callable[[str | None], tzinfo]) -> dict:
    row = split_csv(body)
    count = len(row)
    if count <= _TYPE_AT or not _LOG_TYPE.fullmatch(row[_TYPE_AT]):
        raise ParseError("not a PAN-OS CSV log (no log type in column 4)", error_type="not_panos")
    if count < _HEADER_COLUMNS:
        raise ParseError(
            f"{count} columns: a PAN-OS CSV log has at least {_HEADER_COLUMNS}",
            error_type="too_few_columns",
        )
    log_type = row[_TYPE_AT].upper()
    layout = _LAYOUTS.get(log_type, _COMMON)
    release, expected = _choose(layout, row[_CONFIG_AT], count)
    total = len(layout.names)
    extra = None
    if count > total:
        extra = row[total:]
        del row[total:]
    elif count < total:
        row.extend([""] * (total - count))
    rec, invalid = _BUILDERS[layout.log_type](row, tz_of)
    rec["type"] = log_type
    if extra is not None:
        rec["_extra"] = extra
    if count < expected:
        rec["_truncated"] = True
    if invalid is not None:
        rec["_invalid"] = invalid
        if not any(k in rec for k in _TIME_KEYS):
            raise ParseError(
                "no readable time: "
                + ", ".join(f"{k}={v!r}" for k, v in invalid.items() if k in _TIME_KEYS),
                error_type="bad_timestamp",
            )
    rec["_format"] = "csv"
    rec["_layout"] = release
    return rec
