"""Change points: the events after which a firewall may decrypt differently (pure).

The matching rules are data, ``schemas/changes.toml`` (read here and nowhere else): SYSTEM
events (content, WildFire and URL database installs, commits, software, restarts,
certificates, HSM), CONFIG rows (commits, edits of decryption and certificate settings), and
the config version column stepping on a firewall (a software upgrade, seen in every log type).
Changes the logs cannot show are declared (``--change-at TIME[,serial]``, the
``declared_changes`` setting).

* ``rules().match(record, source_id)``: the change a SYSTEM or CONFIG record shows, or None;
* ``rules().version_step(record, before, after)``: the software change of a config version step;
* ``release_of(config_ver)``: the PAN-OS release of a config version value;
* ``declared(items)``: the changes an operator declared;
* ``to_ecs(change)``: the change's own ECS document (``event.dataset`` ``decryptscope.change``).

Matching is on the rare path only: the chain calls ``match`` for SYSTEM and CONFIG records, and
``version_step`` when a firewall's config version differs from the one it last wrote.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

from pipeline.ecs import ECS_VERSION
from pipeline.errors import ConfigError
from pipeline.panos.layouts import config_versions
from pipeline.panos.values import record_time
from pipeline.resources import SCHEMAS, read_toml

RULES_FILE = SCHEMAS / "changes.toml"
DATASET = "decryptscope.change"
MODULE = "decryptscope"
_OBSERVER = {"vendor": "Palo Alto Networks", "product": "PAN-OS", "type": "firewall"}
# A release written out ("10.1"): what HTTPS/JSON forwarding puts in ConfigVersion.
_RELEASE = re.compile(r"\d{1,2}\.\d{1,2}")
_RULE_KEYS = frozenset(
    {
        "id",
        "kind",
        "subtype",
        "eventid",
        "eventid_prefix",
        "module",
        "pattern",
        "summary",
        "alert",
        "remediation",
        "evidence",
        "cmd",
        "result",
        "path",
    }
)
_ALERTS = frozenset({"", "critical", "warning"})
_CATEGORIES = frozenset({"configuration", "host"})


@dataclass(frozen=True, slots=True)
class ChangePoint:
    """One change on one firewall (``firewall`` empty: a declared change of every firewall)."""

    id: str
    kind: str
    category: str  # ECS event.category of its document
    firewall: str  # serial
    name: str  # device name, "" when the record names none
    time: datetime
    summary: str
    rule: str  # the rule of schemas/changes.toml, "version-step" or "declared"
    evidence: str
    declared: bool = False
    version_from: str = ""
    version_to: str = ""
    user: str = ""
    object: str = ""
    alert: str = ""  # severity of the alert this change raises at once ("": none)
    source_id: str = ""  # the document id of the record that showed it
    remediation: str = ""  # what to do, for a change that raises an alert

    @property
    def label(self) -> str:
        """The firewall as people name it: ``name (serial)``, or whichever is known."""
        if self.name and self.firewall and self.name != self.firewall:
            return f"{self.name} ({self.firewall})"
        return self.name or self.firewall or "every firewall"


@dataclass(frozen=True)
class Kind:
    id: str
    category: str
    detected: bool
    title: str
    rank: int = 0


@dataclass(frozen=True)
class _SystemRule:
    id: str
    kind: str
    subtype: str | None
    eventid: str | None
    eventid_prefix: str | None
    module: str | None
    pattern: re.Pattern[str] | None
    summary: str
    alert: str
    evidence: str
    remediation: str


@dataclass(frozen=True)
class _ConfigRule:
    id: str
    kind: str
    cmd: frozenset[str] | None
    result: frozenset[str] | None
    path: re.Pattern[str] | None
    summary: str
    alert: str
    evidence: str
    remediation: str


class _Blank(dict):
    """Format values: a placeholder without a value is left empty rather than failing."""

    def __missing__(self, key: str) -> str:
        return ""


def _text(value: Any) -> str:
    return "" if value is None else str(value).strip()


class Rules:
    """The compiled rules of one ``changes.toml``."""

    def __init__(self, data: Mapping[str, Any], source: Path | str = RULES_FILE) -> None:
        self.source = str(source)
        if data.get("schema") != 1:
            raise ConfigError(f"{source}: schema = 1 expected")
        kinds = data.get("kinds") or {}
        self.kinds: dict[str, Kind] = {}
        for kid, spec in kinds.items():
            category = spec.get("category")
            if category not in _CATEGORIES:
                raise ConfigError(f"{source}: kind {kid}: category must be one of {_CATEGORIES}")
            title = spec.get("title", kid)
            rank = int(spec.get("rank", 0))
            self.kinds[kid] = Kind(kid, category, bool(spec.get("detected")), title, rank)
        if "declared" not in self.kinds:
            raise ConfigError(f"{source}: the kind 'declared' is needed for declared changes")
        fields = data.get("fields") or {}
        self.fields: dict[str, tuple[str, ...]] = {
            name: tuple(fields.get(name) or (name,))
            for name in ("description", "eventid", "object", "serial", "device_name")
        }
        self.system = tuple(self._system(r) for r in data.get("system") or ())
        self.config = tuple(self._config(r) for r in data.get("config") or ())
        step = data.get("version_step") or {}
        self.step_kind = self._kind(step.get("kind", "software"), "version_step")
        self.step_summary = step.get("summary", "PAN-OS {from} to {to}")
        self.step_evidence = step.get("evidence", "")
        ids = [r.id for r in (*self.system, *self.config)]
        if len(ids) != len(set(ids)):
            raise ConfigError(f"{source}: rule ids must be unique")
        # SYSTEM rules by event id: a record is tried against its event id's rules and the
        # rules that name no event id, in file order.
        self._by_eventid: dict[str, tuple[_SystemRule, ...]] = {}
        for rule in self.system:
            if rule.eventid is not None:
                self._by_eventid[rule.eventid] = ()
        for eventid in self._by_eventid:
            self._by_eventid[eventid] = tuple(
                r for r in self.system if r.eventid in (None, eventid)
            )
        self._any_eventid = tuple(r for r in self.system if r.eventid is None)

    # -- loading ----------------------------------------------------------------------------

    def _kind(self, kind: str, where: str) -> str:
        if kind not in self.kinds:
            raise ConfigError(f"{self.source}: {where}: unknown kind {kind!r}")
        return kind

    def _check(self, raw: Mapping[str, Any]) -> str:
        rid = raw.get("id")
        if not rid:
            raise ConfigError(f"{self.source}: a rule without id")
        unknown = set(raw) - _RULE_KEYS
        if unknown:
            raise ConfigError(f"{self.source}: rule {rid}: unknown keys {sorted(unknown)}")
        if raw.get("alert", "") not in _ALERTS:
            raise ConfigError(f"{self.source}: rule {rid}: alert must be one of {sorted(_ALERTS)}")
        return rid

    def _compile(self, rid: str, pattern: str | None) -> re.Pattern[str] | None:
        if pattern is None:
            return None
        try:
            return re.compile(pattern)
        except re.error as exc:
            raise ConfigError(f"{self.source}: rule {rid}: bad pattern: {exc}") from exc

    def _system(self, raw: Mapping[str, Any]) -> _SystemRule:
        rid = self._check(raw)
        return _SystemRule(
            id=rid,
            kind=self._kind(raw.get("kind", ""), rid),
            subtype=raw.get("subtype"),
            eventid=raw.get("eventid"),
            eventid_prefix=raw.get("eventid_prefix"),
            module=raw.get("module"),
            pattern=self._compile(rid, raw.get("pattern")),
            summary=raw.get("summary", "{description}"),
            alert=raw.get("alert", ""),
            evidence=raw.get("evidence", ""),
            remediation=" ".join(str(raw.get("remediation", "")).split()),
        )

    def _config(self, raw: Mapping[str, Any]) -> _ConfigRule:
        rid = self._check(raw)
        cmd, result = raw.get("cmd"), raw.get("result")
        return _ConfigRule(
            id=rid,
            kind=self._kind(raw.get("kind", ""), rid),
            cmd=frozenset(cmd) if cmd is not None else None,
            result=frozenset(result) if result is not None else None,
            path=self._compile(rid, raw.get("path")),
            summary=raw.get("summary", "{cmd} {path}"),
            alert=raw.get("alert", ""),
            evidence=raw.get("evidence", ""),
            remediation=" ".join(str(raw.get("remediation", "")).split()),
        )

    # -- reading a record -------------------------------------------------------------------

    def _field(self, record: Mapping[str, Any], name: str) -> str:
        extra = record.get("_extra")
        for key in self.fields[name]:
            value = record.get(key)
            if value is None and isinstance(extra, Mapping):
                value = extra.get(key)
            if value not in (None, ""):
                return _text(value)
        return ""

    def match(self, record: Mapping[str, Any], source_id: str = "") -> ChangePoint | None:
        """The change a SYSTEM or CONFIG record shows; None for any other record."""
        log_type = record.get("type")
        if log_type == "SYSTEM":
            return self._match_system(record, source_id)
        if log_type == "CONFIG":
            return self._match_config(record, source_id)
        return None

    def _match_system(self, record: Mapping[str, Any], source_id: str) -> ChangePoint | None:
        eventid = self._field(record, "eventid")
        subtype = _text(record.get("subtype"))
        module = _text(record.get("module"))
        description = self._field(record, "description")
        for rule in self._by_eventid.get(eventid, self._any_eventid):
            if rule.subtype is not None and rule.subtype != subtype:
                continue
            if rule.module is not None and rule.module != module:
                continue
            if rule.eventid_prefix is not None and not eventid.startswith(rule.eventid_prefix):
                continue
            groups: dict[str, Any] = {}
            if rule.pattern is not None:
                found = rule.pattern.search(description)
                if found is None:
                    continue
                groups = {k: v for k, v in found.groupdict().items() if v is not None}
            values = _Blank(groups)
            values.setdefault("description", description)
            values.setdefault("object", self._field(record, "object"))
            return self._change(record, rule, values, source_id)
        return None

    def _match_config(self, record: Mapping[str, Any], source_id: str) -> ChangePoint | None:
        cmd = _text(record.get("cmd"))
        result = _text(record.get("result"))
        path = _text(record.get("path"))
        for rule in self.config:
            if rule.cmd is not None and cmd not in rule.cmd:
                continue
            if rule.result is not None and result not in rule.result:
                continue
            if rule.path is not None and rule.path.search(path) is None:
                continue
            values = _Blank(
                cmd=cmd,
                result=result,
                path=" ".join(path.split()),
                admin=_text(record.get("admin")),
                client=_text(record.get("client")),
                user=_text(record.get("admin")),
                object=" ".join(path.split()),
            )
            return self._change(record, rule, values, source_id)
        return None

    def _change(
        self,
        record: Mapping[str, Any],
        rule: _SystemRule | _ConfigRule,
        values: _Blank,
        source_id: str,
    ) -> ChangePoint | None:
        when = record_time(record)
        if when is None:
            return None
        serial = self._field(record, "serial")
        kind = rule.kind
        text = " ".join(rule.summary.format_map(values).split())
        return ChangePoint(
            id=f"{source_id or serial + ':' + when.isoformat()}:change",
            kind=kind,
            category=self.kinds[kind].category,
            firewall=serial,
            name=self._field(record, "device_name"),
            time=when,
            summary=text or self.kinds[kind].title,
            rule=rule.id,
            evidence=rule.evidence,
            version_from=values.get("from", ""),
            version_to=values.get("to", ""),
            user=values.get("user", ""),
            object=values.get("object", "") or values.get("file", ""),
            alert=rule.alert,
            source_id=source_id,
            remediation=rule.remediation,
        )

    def version_step(
        self, record: Mapping[str, Any], before: tuple[str, str | None], after: tuple[str, str]
    ) -> ChangePoint | None:
        """The software change of a firewall whose config version went from ``before`` to
        ``after`` (each ``(column value, release)``); None without a time."""
        when = record_time(record)
        if when is None:
            return None
        serial = _text(record.get("serial"))
        values = _Blank(
            {"from": before[1] or before[0], "to": after[1]},
            from_raw=before[0],
            to_raw=after[0],
        )
        return ChangePoint(
            id=f"{serial}:CHANGE:version:{after[0]}:{int(when.timestamp())}",
            kind=self.step_kind,
            category=self.kinds[self.step_kind].category,
            firewall=serial,
            name=_text(record.get("device_name")),
            time=when,
            summary=" ".join(self.step_summary.format_map(values).split()),
            rule="version-step",
            evidence=self.step_evidence,
            version_from=before[1] or before[0],
            version_to=after[1],
        )


@cache
def rules(path: str | None = None) -> Rules:
    """The (cached) rules of ``path``, ``schemas/changes.toml`` by default."""
    source = Path(path) if path else RULES_FILE
    return Rules(read_toml(source, "change rules"), source)


def kinds() -> tuple[str, ...]:
    """Every kind of change point (a closed set)."""
    return tuple(rules().kinds)


def rank(kind: str) -> int:
    """Which of several changes at one moment explains a regression best (higher first)."""
    found = rules().kinds.get(kind)
    return found.rank if found is not None else 0


_RELEASES: dict[str, str | None] = {}


def release_of(config_ver: str) -> str | None:
    """The PAN-OS release of a config version column value ("2562" -> "10.2"; HTTPS/JSON
    forwarding writes "10.2" itself); None when unknown (anonymised samples write 0)."""
    release = _RELEASES.get(config_ver, "")
    if release == "":
        release = config_versions().get(config_ver)
        if release is None and _RELEASE.fullmatch(config_ver):
            release = config_ver
        if len(_RELEASES) < 1024:
            _RELEASES[config_ver] = release
    return release


def _release_key(release: str) -> tuple[int, ...]:
    return tuple(int(p) for p in release.split("."))


def is_upgrade(before: str, after: str) -> bool:
    """Whether release ``after`` is newer than ``before``."""
    return _release_key(after) > _release_key(before)


# --- declared changes ---------------------------------------------------------------------------


def parse_time(text: str) -> datetime:
    """An ISO 8601 time ("2026-03-01T02:00:00+01:00", "...Z"; without an offset: UTC)."""
    try:
        when = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError as exc:
        raise ConfigError(f"declared change: {text!r} is not an ISO 8601 time") from exc
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def _is_time(text: str) -> bool:
    try:
        parse_time(text)
    except ConfigError:
        return False
    return True


def declared(items: Iterable[str]) -> list[ChangePoint]:
    """The changes an operator declared, each ``TIME[,serial]`` (a change of every firewall
    without a serial). Items may also come split at their commas (a comma-separated setting):
    a part that is a time starts a change, the part after it is its firewall."""
    parts = [p.strip() for item in items for p in str(item).split(",") if p.strip()]
    pairs: list[tuple[str, str]] = []
    for part in parts:
        if _is_time(part):
            pairs.append((part, ""))
        elif pairs and not pairs[-1][1]:
            pairs[-1] = (pairs[-1][0], part)
        else:
            raise ConfigError(f"declared change: {part!r} is neither a time nor a serial after one")
    title = rules().kinds["declared"].title
    out = []
    for text, serial in pairs:
        when = parse_time(text)
        out.append(
            ChangePoint(
                id=f"{serial or '*'}:CHANGE:declared:{when.isoformat()}",
                kind="declared",
                category=rules().kinds["declared"].category,
                firewall=serial,
                name="",
                time=when,
                summary=title + (f" on {serial}" if serial else " (every firewall)"),
                rule="declared",
                evidence="declared",
                declared=True,
            )
        )
    return out


# --- the change's document ----------------------------------------------------------------------


def to_ecs(change: ChangePoint) -> dict[str, Any]:
    """The change's ECS document: its own event (``event.dataset`` decryptscope.change,
    ``event.type`` change), the firewall as observer, the change under
    ``decryptscope.change``; what Grafana's annotations and the before/after read."""
    stamp = change.time.isoformat(timespec="milliseconds")
    body: dict[str, Any] = {
        "id": change.id,
        "kind": change.kind,
        "summary": change.summary,
        "rule": change.rule,
        "evidence": change.evidence,
        "declared": change.declared,
    }
    for key, value in (
        ("from", change.version_from),
        ("to", change.version_to),
        ("user", change.user),
        ("object", change.object),
        ("alert", change.alert),
        ("source_id", change.source_id),
    ):
        if value:
            body[key] = value
    observer: dict[str, Any] = dict(_OBSERVER)
    if change.firewall:
        observer["serial_number"] = change.firewall
    if change.name:
        observer["hostname"] = change.name
    doc: dict[str, Any] = {
        "@timestamp": stamp,
        "ecs": {"version": ECS_VERSION},
        "message": change.summary,
        "event": {
            "kind": "event",
            "category": [change.category],
            "type": ["change"],
            "action": change.kind,
            "module": MODULE,
            "dataset": DATASET,
        },
        "observer": observer,
        "decryptscope": {"failure": False, "change": body},
    }
    if change.name:
        doc["related"] = {"hosts": [change.name]}
    return doc
