"""Column layouts of PAN-OS CSV logs, read from ``schemas/panos/*.csv`` (data, not code).

One file per log type lists every column ever seen, in wire order, with its name (PAN-OS
custom-log-format variable), target field, value type and the release that added it. The
layout of a line is the prefix of that list for the line's release (from the config-version
column) or, when the release is unknown, the longest prefix that the line fills.

A file ``<type>-<variant>.csv`` is another layout of the same log type (CONFIG in the custom
format); a line takes the first layout whose Action Flags column holds a ``0x`` value there.
``logtypes.csv`` names the log types and their other spellings, ``flags.csv`` the bits of the
Flags column."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from pipeline.errors import ConfigError
from pipeline.panos.values import CONVERTERS, Converter
from pipeline.resources import SCHEMAS

LAYOUT_DIR = SCHEMAS / "panos"
SKIP = "-"
# Files that are not one log type's layout.
_NOT_LAYOUTS = frozenset(
    {"versions", "common", "cef", "leef", "json", "session", "logtypes", "flags"}
)
_VARIANT = "-"
_FIELDS = ("name", "target", "type", "since")


def _version_key(version: str) -> tuple[int, ...]:
    try:
        return tuple(int(p) for p in version.split("."))
    except ValueError as exc:
        raise ConfigError(f"bad PAN-OS version {version!r} in a layout file") from exc


@dataclass(frozen=True)
class Column:
    name: str
    target: str
    type: str
    since: str


@dataclass(frozen=True)
class Layout:
    """The full column list of one log type and what the hot path needs precomputed."""

    log_type: str
    columns: tuple[Column, ...]
    names: tuple[str, ...]
    # (name, converter) for the columns whose text must be converted (not str / skip).
    typed: tuple[tuple[str, Converter], ...]
    # (version, number of columns in that release's layout), oldest first.
    versions: tuple[tuple[str, int], ...]
    source: Path

    def length_for(self, version: str) -> int:
        """Columns in the layout of ``version`` (a release between two known ones takes the
        older one's layout)."""
        key = _version_key(version)
        length = self.versions[0][1]
        for v, n in self.versions:
            if _version_key(v) <= key:
                length = n
        return length

    def version_for_count(self, count: int) -> tuple[str, int]:
        """The newest release whose layout the line fills (unknown config version)."""
        best = self.versions[0]
        for v, n in self.versions:
            if n <= count:
                best = (v, n)
        return best

    def column(self, name: str) -> Column | None:
        for c in self.columns:
            if c.name == name:
                return c
        return None


def _read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as fh:
        lines = [line for line in fh if line.strip() and not line.startswith("#")]
    return list(csv.DictReader(lines))


def load_layout(path: Path, log_type: str | None = None) -> Layout:
    rows = _read_rows(path)
    if not rows or any(f not in rows[0] for f in _FIELDS):
        raise ConfigError(f"{path}: a layout needs the columns {', '.join(_FIELDS)}")
    columns: list[Column] = []
    for i, row in enumerate(rows, start=1):
        col = Column(
            row["name"].strip(), row["target"].strip(), row["type"].strip(), row["since"].strip()
        )
        if col.type not in CONVERTERS:
            raise ConfigError(f"{path}: row {i} ({col.name}): unknown type {col.type!r}")
        if not col.name:
            raise ConfigError(f"{path}: row {i}: empty name")
        _version_key(col.since)
        columns.append(col)
    seen: set[str] = set()
    for col in columns:
        if col.name != SKIP and col.name in seen:
            raise ConfigError(f"{path}: column {col.name!r} appears twice")
        seen.add(col.name)
    versions: list[tuple[str, int]] = []
    for i, col in enumerate(columns):
        if versions and _version_key(col.since) < _version_key(versions[-1][0]):
            raise ConfigError(f"{path}: column {col.name!r} is older than the column before it")
        if versions and versions[-1][0] == col.since:
            versions[-1] = (col.since, i + 1)
        else:
            versions.append((col.since, i + 1))
    typed = tuple(
        (c.name, conv)
        for c in columns
        if c.name != SKIP and (conv := CONVERTERS[c.type]) is not None
    )
    return Layout(
        log_type=(log_type or path.stem).upper(),
        columns=tuple(columns),
        names=tuple(c.name for c in columns),
        typed=typed,
        versions=tuple(versions),
        source=path,
    )


def _layout_files(directory: Path) -> list[Path]:
    return [p for p in sorted(directory.glob("*.csv")) if p.stem not in _NOT_LAYOUTS]


@cache
def layouts(directory: Path = LAYOUT_DIR) -> dict[str, Layout]:
    """Log type (upper case) -> Layout, for every layout file in ``directory``."""
    found = {
        p.stem.upper(): load_layout(p) for p in _layout_files(directory) if _VARIANT not in p.stem
    }
    if not found:
        raise ConfigError(f"no PAN-OS layout files in {directory}")
    return found


@cache
def layout_variants(directory: Path = LAYOUT_DIR) -> dict[str, tuple[Layout, ...]]:
    """Log type -> its other layouts (``<type>-<variant>.csv``), in file name order."""
    found: dict[str, tuple[Layout, ...]] = {}
    known = layouts(directory)
    for p in _layout_files(directory):
        base, sep, _ = p.stem.partition(_VARIANT)
        if not sep:
            continue
        log_type = base.upper()
        if log_type not in known:
            raise ConfigError(f"{p}: a variant of {log_type}, which has no layout file")
        layout = load_layout(p, log_type)
        if "actionflags" not in layout.names or "actionflags" not in known[log_type].names:
            raise ConfigError(f"{p}: variants are told apart by their actionflags column")
        found[log_type] = (*found.get(log_type, ()), layout)
    return found


@dataclass(frozen=True)
class LogType:
    name: str
    kind: str
    categories: tuple[str, ...]


@cache
def log_types(directory: Path = LAYOUT_DIR) -> dict[str, LogType]:
    """Every spelling of a log type's name (upper case) -> LogType (``logtypes.csv``)."""
    out: dict[str, LogType] = {}
    for r in _read_rows(directory / "logtypes.csv"):
        name = r["type"].strip().upper()
        entry = LogType(name, r["kind"].strip(), tuple(r["category"].split()))
        for spelling in (name, *r["aliases"].upper().split()):
            if spelling in out:
                raise ConfigError(f"logtypes.csv: {spelling!r} named twice")
            out[spelling] = entry
    missing = set(layouts(directory)) - set(out)
    if missing:
        raise ConfigError(f"logtypes.csv: no entry for the layouts of {sorted(missing)}")
    return out


@dataclass(frozen=True)
class FlagBit:
    bit: int
    label: str
    decrypted: bool


@cache
def flag_bits(directory: Path = LAYOUT_DIR) -> tuple[FlagBit, ...]:
    """The bits of the Flags column and their labels (``flags.csv``), highest bit first."""
    out: list[FlagBit] = []
    for r in _read_rows(directory / "flags.csv"):
        try:
            bit = int(r["bit"], 16)
        except ValueError as exc:
            raise ConfigError(f"flags.csv: bad bit {r['bit']!r}") from exc
        out.append(FlagBit(bit, r["label"].strip(), r["decrypted"].strip() == "yes"))
    return tuple(out)


@cache
def common_layout(directory: Path = LAYOUT_DIR) -> Layout:
    """The columns shared by every log type (for types without a layout file)."""
    return load_layout(directory / "common.csv", "COMMON")


@cache
def config_versions(directory: Path = LAYOUT_DIR) -> dict[str, str]:
    """Config-version column value ("2562") -> release ("10.2")."""
    return {
        r["config_ver"].strip(): r["version"].strip()
        for r in _read_rows(directory / "versions.csv")
    }


@cache
def field_types(directory: Path = LAYOUT_DIR) -> dict[str, Converter | None]:
    """Record key -> converter, over every layout (CEF, LEEF and JSON values use the same)."""
    out: dict[str, Converter | None] = {}
    for layout in (common_layout(directory), *layouts(directory).values()):
        for c in layout.columns:
            if c.name != SKIP:
                out.setdefault(c.name, CONVERTERS[c.type])
    return out


@cache
def key_map(fmt: str, directory: Path = LAYOUT_DIR) -> dict[str, str]:
    """Vendor key of the CEF/LEEF/JSON rendering -> record key (``schemas/panos/<fmt>.csv``)."""
    rows = _read_rows(directory / f"{fmt}.csv")
    if not rows or "key" not in rows[0] or "name" not in rows[0]:
        raise ConfigError(f"{directory / (fmt + '.csv')}: needs the columns key, name")
    return {r["key"].strip(): r["name"].strip() for r in rows}


@cache
def session_labels(directory: Path = LAYOUT_DIR) -> dict[str, tuple[str, Converter | None]]:
    """``show session id`` label -> (record key, converter)."""
    out: dict[str, tuple[str, Converter | None]] = {}
    for r in _read_rows(directory / "session.csv"):
        kind = r["type"].strip()
        if kind not in CONVERTERS:
            raise ConfigError(f"session.csv: unknown type {kind!r} for {r['label']!r}")
        out[r["label"].strip().lower()] = (r["name"].strip(), CONVERTERS[kind])
    return out


@cache
def session_labels_targets(directory: Path = LAYOUT_DIR) -> dict[str, tuple[str, str]]:
    """``show session id`` record key -> (ECS / panw.panos target, type) from session.csv."""
    return {
        r["name"].strip(): (r["target"].strip(), r["type"].strip())
        for r in _read_rows(directory / "session.csv")
        if r.get("target")
    }


@cache
def all_columns(directory: Path = LAYOUT_DIR) -> tuple[Column, ...]:
    """Every named column of every layout (common, each log type, its variants) and of the
    ``show session id`` layout, for what other rooms derive from the layouts (the record
    keys a catalogue may name, the ``panw.panos.*`` index mapping)."""
    columns: list[Column] = list(common_layout(directory).columns)
    for layout in layouts(directory).values():
        columns.extend(layout.columns)
    for variants in layout_variants(directory).values():
        for layout in variants:
            columns.extend(layout.columns)
    for name, (target, kind) in session_labels_targets(directory).items():
        columns.append(Column(name, target, kind, ""))
    for name, _converter in session_labels(directory).values():
        columns.append(Column(name, "", "str", ""))
    return tuple(c for c in columns if c.name and c.name != SKIP)


def record_keys(directory: Path = LAYOUT_DIR) -> frozenset[str]:
    """Every record key a layout names."""
    return frozenset(c.name for c in all_columns(directory))
