"""ECS document -> OCSF 1.8.0 Network Activity event (pure).

The mapping is data: ``schemas/ocsf/network-activity.toml`` (read here and nowhere else) names
the OCSF paths each ECS field goes to, the enumerations, the activity rules, the observables and
what the schema requires of each object. This module compiles it once and applies it.

The input is the ECS document the pipeline already writes (``pipeline.ecs.to_ecs``), so the
OCSF form does not depend on how events were read or batched. DECRYPTION, TRAFFIC and
``show session id`` (SESSION) documents become Network Activity (class 4001) with the ``tls``
object; other log types have no OCSF form here (``to_ocsf`` returns None). The diagnosis goes
under ``unmapped.decryptscope`` (OCSF refuses custom top-level keys), its cause's title into
``status_detail``."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from pipeline import resources
from pipeline.diagnosis import classifier_for
from pipeline.errors import ConfigError

MAPPING_PATH = resources.SCHEMAS / "ocsf" / "network-activity.toml"

Keys = tuple[str, ...]


def _split(path: str) -> Keys:
    return tuple(path.split("."))


def _get(doc: Mapping[str, Any], path: Keys) -> Any:
    value: Any = doc
    for key in path:
        if value.__class__ is not dict:
            return None
        value = value.get(key)
        if value is None:
            return None
    return value


def _set(event: dict, path: Keys, value: Any) -> None:
    node = event
    for key in path[:-1]:
        child = node.get(key)
        if child is None:
            child = node[key] = {}
        node = child
    node[path[-1]] = value


# --- conversions --------------------------------------------------------------------------
def _epoch_ms(value: Any) -> int | None:
    if not isinstance(value, str):
        return None
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        return None
    if when.tzinfo is None:  # a time without its offset is not a point in time
        return None
    return int(when.timestamp() * 1000)


def _tz_minutes(value: Any) -> int | None:
    if value == "Z":
        return 0
    if not isinstance(value, str) or len(value) != 6 or value[0] not in "+-" or value[3] != ":":
        return None
    try:
        minutes = int(value[1:3]) * 60 + int(value[4:6])
    except ValueError:
        return None
    return -minutes if value[0] == "-" else minutes


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _ns_to_ms(value: Any) -> int | None:
    ns = _int(value)
    return None if ns is None else ns // 1_000_000


def _str(value: Any) -> str | None:
    return None if isinstance(value, dict | list) else str(value)


_DN_SPECIAL = re.compile(r'[,+"\\<>;\0]')


def _dn_escape(found: re.Match[str]) -> str:
    return "\\00" if found.group() == "\0" else "\\" + found.group()


def dn_from_cn(cn: Any) -> str | None:
    """``CN=<cn>`` escaped as RFC 4514 says: PAN-OS logs only the common name where OCSF asks
    for a distinguished name, and a DN of that one attribute is what is known."""
    if not isinstance(cn, str) or not cn:
        return None
    trailing_space = len(cn) > 1 and cn[-1] == " "
    text = _DN_SPECIAL.sub(_dn_escape, cn[:-1] if trailing_space else cn)
    if text[0] in "# ":
        text = "\\" + text
    return "CN=" + text + ("\\ " if trailing_space else "")


def _tls_version(value: Any, doc: Mapping[str, Any]) -> str | None:
    # The firewall's own notation ("TLS1.2"), rebuilt from ECS's split version.
    if not isinstance(value, str) or not value:
        return None
    protocol = _get(doc, ("tls", "version_protocol"))
    return f"{protocol.upper()}{value}" if isinstance(protocol, str) else value


_CONVERSIONS: dict[str, Callable[[Any], Any]] = {
    "": lambda v: v,
    "int": _int,
    "str": _str,
    "epoch_ms": _epoch_ms,
    "ns_to_ms": _ns_to_ms,
    "tz_minutes": _tz_minutes,
    "dn_cn": dn_from_cn,
}
_DOC_CONVERSIONS = {"tls_version": _tls_version}  # those that read another field too


# --- the compiled mapping -----------------------------------------------------------------
Condition = tuple[tuple[Keys, frozenset[str]], ...]


@dataclass(frozen=True, slots=True)
class _Field:
    sources: tuple[Keys, ...]
    target: Keys
    slot: int  # index of the target's parent object in OcsfMapping.slots
    convert: Callable[[Any], Any] | None
    convert_doc: Callable[[Any, Mapping[str, Any]], Any] | None
    skip: frozenset[str]
    append: Mapping[str, Any] | None


@dataclass(frozen=True, slots=True)
class _Enum:
    sources: tuple[Keys, ...]
    target: Keys
    values: Mapping[str, int]
    default: int
    caption_target: Keys | None
    captions: Mapping[int, str]
    when: Condition


@dataclass(frozen=True, slots=True)
class OcsfMapping:
    ocsf_version: str
    class_uid: int
    class_name: str
    log_types: frozenset[str]
    constants: Mapping[str, Any]  # nested: the start of every event
    fields: tuple[_Field, ...]
    # Fields with one source, grouped by the ECS object they read from: one lookup of that
    # object per event, and a whole group skipped when the document lacks it.
    groups: tuple[tuple[Keys, tuple[tuple[str, _Field], ...]], ...]
    multi_source: tuple[_Field, ...]
    slots: tuple[Keys, ...]
    enums: tuple[_Enum, ...]
    activity: tuple[tuple[Condition, int], ...]
    activity_captions: Mapping[int, str]
    observables: tuple[tuple[Keys, str, int, str], ...]
    unmapped: tuple[str, ...]
    requires: tuple[tuple[Keys, frozenset[str], frozenset[str]], ...]
    uid_sources: tuple[Keys, ...]
    uid_separator: str
    uid_target: Keys
    alert_source: Keys
    alert_pattern: re.Pattern[str]
    alert_target: Keys
    alert_codes: Mapping[str, int]


def _nest(flat: Mapping[str, Any]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for key, value in flat.items():
        _set(tree, _split(key), value)
    return tree


def _copy(tree: Mapping[str, Any]) -> dict[str, Any]:
    # The constants are a few small objects; each event gets its own (nothing is shared).
    return {
        k: _copy(v) if v.__class__ is dict else list(v) if v.__class__ is list else v
        for k, v in tree.items()
    }


def _condition(path: Path, where: str, when: Any) -> Condition:
    if not isinstance(when, dict):
        raise ConfigError(f"{path}: {where}: 'when' must be a table")
    out = []
    for key, allowed in when.items():
        if not isinstance(allowed, list) or not all(isinstance(a, str) for a in allowed):
            raise ConfigError(f"{path}: {where}: 'when.{key}' must be a list of strings")
        out.append((_split(key), frozenset(allowed)))
    return tuple(out)


def _captions(path: Path, data: Mapping[str, Any], name: str) -> dict[int, str]:
    table = data.get("captions", {}).get(name)
    if table is None:
        raise ConfigError(f"{path}: no [captions.{name}]")
    return {int(k): v for k, v in table.items()}


def _sources(path: Path, where: str, value: Any) -> tuple[Keys, ...]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items or not all(isinstance(i, str) for i in items):
        raise ConfigError(f"{path}: {where}: 'from' must be a path or a list of paths")
    return tuple(_split(i) for i in items)


def load_mapping(path: Path = MAPPING_PATH) -> OcsfMapping:
    """Read and check the mapping file; a mistake is a ConfigError naming the file."""
    data = resources.read_toml(path, "OCSF mapping")
    try:
        constants = data["constants"]
        fields = []
        slots: dict[Keys, int] = {}
        for i, f in enumerate(data["fields"]):
            where = f"fields[{i}] ({f.get('to')})"
            kind = f.get("as", "")
            if kind not in _CONVERSIONS and kind not in _DOC_CONVERSIONS:
                raise ConfigError(f"{path}: {where}: unknown conversion {kind!r}")
            target = _split(f["to"])
            fields.append(
                _Field(
                    sources=_sources(path, where, f["from"]),
                    target=target,
                    slot=slots.setdefault(target[:-1], len(slots)),
                    convert=_CONVERSIONS.get(kind) if kind else None,
                    convert_doc=_DOC_CONVERSIONS.get(kind),
                    skip=frozenset(f.get("skip", ())),
                    append=f.get("append"),
                )
            )
        enums = []
        for i, e in enumerate(data["enums"]):
            where = f"enums[{i}] ({e.get('to')})"
            caption_to = e.get("caption_to")
            enums.append(
                _Enum(
                    sources=_sources(path, where, e["from"]),
                    target=_split(e["to"]),
                    values={str(k): int(v) for k, v in e["values"].items()},
                    default=int(e["default"]),
                    caption_target=_split(caption_to) if caption_to else None,
                    captions=_captions(path, data, e["to"]) if caption_to else {},
                    when=_condition(path, where, e.get("when", {})),
                )
            )
        activity_captions = _captions(path, data, "activity_id")
        activity = []
        for i, a in enumerate(data["activity"]):
            if int(a["id"]) not in activity_captions:
                raise ConfigError(f"{path}: activity[{i}]: id {a['id']} has no caption")
            activity.append((_condition(path, f"activity[{i}]", a["when"]), int(a["id"])))
        observables = tuple(
            (_split(o["path"]), o["path"], int(o["type_id"]), o["type"])
            for o in data["observables"]
        )
        requires = tuple(
            sorted(
                (
                    (_split(r["object"]), frozenset(r.get("all", ())), frozenset(r.get("any", ())))
                    for r in data["requires"]
                ),
                key=lambda r: -len(r[0]),
            )
        )
        groups: dict[Keys, list[tuple[str, _Field]]] = {}
        for f in fields:
            if len(f.sources) == 1:
                groups.setdefault(f.sources[0][:-1], []).append((f.sources[0][-1], f))
        alert = data["tls_alert"]
        uid = data["uid"]
        mapping = OcsfMapping(
            ocsf_version=data["ocsf_version"],
            class_uid=int(constants["class_uid"]),
            class_name=constants["class_name"],
            log_types=frozenset(data["log_types"]),
            constants=_nest(constants),
            fields=tuple(fields),
            groups=tuple((parent, tuple(members)) for parent, members in groups.items()),
            multi_source=tuple(f for f in fields if len(f.sources) > 1),
            slots=tuple(slots),
            enums=tuple(enums),
            activity=tuple(activity),
            activity_captions=activity_captions,
            observables=observables,
            unmapped=tuple(data["unmapped"]),
            requires=requires,
            uid_sources=_sources(path, "uid", uid["from"]),
            uid_separator=uid["separator"],
            uid_target=_split(uid["to"]),
            alert_source=_split(alert["from"]),
            alert_pattern=re.compile(alert["pattern"], re.IGNORECASE),
            alert_target=_split(alert["to"]),
            alert_codes={k.replace("_", ""): int(v) for k, v in alert["codes"].items()},
        )
    except ConfigError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError, re.error) as exc:
        raise ConfigError(f"OCSF mapping {path}: {type(exc).__name__}: {exc}") from exc
    if constants.get("metadata.version") != mapping.ocsf_version:
        raise ConfigError(f"{path}: metadata.version must be ocsf_version {mapping.ocsf_version}")
    if not activity or activity[-1][0]:
        raise ConfigError(f"{path}: the last [[activity]] must have an empty 'when' (fallback)")
    return mapping


MAPPING = load_mapping()


def _holds(doc: Mapping[str, Any], condition: Condition) -> bool:
    return all(_get(doc, path) in allowed for path, allowed in condition)


def _cause_title(cause: Any) -> str | None:
    found = classifier_for(None).catalogue.causes.get(cause)
    return found.title if found is not None else None


def _prune(event: dict, path: Keys, all_of: frozenset[str], any_of: frozenset[str]) -> None:
    parent = _get(event, path[:-1]) if len(path) > 1 else event
    if parent is None:
        return
    obj = parent.get(path[-1])
    if obj is None:
        return
    if not all_of.issubset(obj) or (any_of and any_of.isdisjoint(obj)):
        del parent[path[-1]]


def _put(
    event: dict,
    objects: list[dict | None],
    f: _Field,
    value: Any,
    doc: Mapping[str, Any],
) -> None:
    if f.convert is not None:
        value = f.convert(value)
    elif f.convert_doc is not None:
        value = f.convert_doc(value, doc)
    if value is None:
        return
    parent = objects[f.slot]
    if parent is None:
        parent = event
        for key in f.target[:-1]:
            child = parent.get(key)
            if child is None:
                child = parent[key] = {}
            parent = child
        objects[f.slot] = parent
    leaf = f.target[-1]
    if f.append is not None:
        items = parent.get(leaf)
        if items is None:
            items = parent[leaf] = []
        items.append({**f.append, "value": value})
    else:
        parent[leaf] = value


def to_ocsf(ecs_document: Mapping[str, Any], mapping: OcsfMapping = MAPPING) -> dict | None:
    """The OCSF event of one ECS document, or None when its log type has no OCSF form here.

    The event shares ``unmapped``'s objects with the input document: encode it before changing
    the document."""
    doc = ecs_document
    if _get(doc, ("panw", "panos", "type")) not in mapping.log_types:
        return None
    event: dict[str, Any] = _copy(mapping.constants)

    objects: list[dict | None] = [None] * len(mapping.slots)
    for parent, members in mapping.groups:
        obj = _get(doc, parent) if parent else doc
        if obj.__class__ is not dict:
            continue
        for leaf, f in members:
            value = obj.get(leaf)
            if value is not None and not (value.__class__ is str and value in f.skip):
                _put(event, objects, f, value, doc)
    for f in mapping.multi_source:
        for source in f.sources:
            value = _get(doc, source)
            if value is not None and not (value.__class__ is str and value in f.skip):
                _put(event, objects, f, value, doc)
                break

    parts = []
    for source in mapping.uid_sources:
        value = _get(doc, source)
        if value is None or value.__class__ is dict or value.__class__ is list:
            break
        parts.append(str(value))
    else:
        _set(event, mapping.uid_target, mapping.uid_separator.join(parts))

    for e in mapping.enums:
        if e.when and not _holds(doc, e.when):
            continue
        uid = e.default
        for source in e.sources:
            value = _get(doc, source)
            if value.__class__ is str and value in e.values:
                uid = e.values[value]
                break
        _set(event, e.target, uid)
        if e.caption_target is not None:
            _set(event, e.caption_target, e.captions.get(uid, "Other"))

    # The last entry holds always (checked at load).
    activity_id = next(uid for condition, uid in mapping.activity if _holds(doc, condition))
    activity_name = mapping.activity_captions[activity_id]
    event["activity_id"] = activity_id
    event["activity_name"] = activity_name
    event["type_uid"] = mapping.class_uid * 100 + activity_id
    event["type_name"] = f"{mapping.class_name}: {activity_name}"

    text = _get(doc, mapping.alert_source)
    if text.__class__ is str:
        found = mapping.alert_pattern.search(text)
        if found is not None:
            code = mapping.alert_codes.get(found.group(1).lower().replace("_", ""))
            if code is not None:
                _set(event, mapping.alert_target, code)

    diagnosis = doc.get("decryptscope")
    if diagnosis.__class__ is dict and diagnosis.get("cause"):
        title = _cause_title(diagnosis["cause"])
        if title:
            event["status_detail"] = title

    for path, all_of, any_of in mapping.requires:
        _prune(event, path, all_of, any_of)

    observables = []
    for path, name, type_id, type_name in mapping.observables:
        value = _get(event, path)
        if value is not None:
            observables.append(
                {"name": name, "type_id": type_id, "type": type_name, "value": value}
            )
    if observables:
        event["observables"] = observables

    unmapped = {key: doc[key] for key in mapping.unmapped if doc.get(key) is not None}
    if unmapped:
        event["unmapped"] = unmapped
    return event
