"""The Elasticsearch side of ``decryptscope setup``: component templates, the index templates
of the events and of the alerts, drift checks and retention of the daily indices.

Templates are data: the ECS component templates in ``schemas/ecs/components/`` (Elastic's, as
published), ``schemas/ecs/decryptscope-component.json``, ``schemas/ecs/index-template.json``,
the ``panw.panos.*`` component generated from the column layouts in ``schemas/panos/`` (their
``target`` and ``type`` columns), and ``schemas/alerts/index-template.json`` for the alert
indices. Everything is named after ``index_prefix`` (events) or ``alerts_index`` (alerts) so that
several deployments (or test runs) share one cluster without touching each other.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from pipeline.errors import ConfigError, SinkError
from pipeline.panos.layouts import all_columns
from pipeline.resources import SCHEMAS

ECS_DIR = SCHEMAS / "ecs"
COMPONENTS_DIR = ECS_DIR / "components"
ALERTS_TEMPLATE = SCHEMAS / "alerts" / "index-template.json"

# Layout column type -> Elasticsearch field type. The parser keeps an integer beyond 64 bits
# as its text: ignore_malformed keeps the document (the text stays in _source).
_LAYOUT_TYPES = {
    "str": {"type": "keyword", "ignore_above": 1024},
    "int": {"type": "long", "ignore_malformed": True},
    "hex": {"type": "long", "ignore_malformed": True},
    "time": {"type": "date"},
    "isotime": {"type": "date"},
    "ip": {"type": "ip"},
}
# How Elasticsearch says a field type is unknown (the wording changed between versions).
_NO_HANDLER = re.compile(
    r"No handler for type \[(\w+)\]|The mapper type \[(\w+)\] declared on field .*? does not exist"
)
_DAILY = re.compile(r"-(\d{4})\.(\d{2})\.(\d{2})$")


def _load_json(path: Path) -> dict[str, Any]:
    try:
        return orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError) as exc:
        raise ConfigError(f"template file {path}: {exc}") from exc


def panw_component() -> dict[str, Any]:
    """The ``panw.panos.*`` mapping from the layouts' ``target``/``type`` columns.

    Fields no layout names (new PAN-OS columns kept as extras) are mapped dynamically: strings
    as keyword. A target two layouts type differently becomes keyword."""
    leaves: dict[str, dict[str, Any]] = {}
    for column in all_columns():
        target, kind = column.target, column.type
        if not target.startswith("panw.panos.") or kind not in _LAYOUT_TYPES:
            continue
        mapping = _LAYOUT_TYPES[kind]
        if leaves.setdefault(target, mapping) != mapping:
            leaves[target] = _LAYOUT_TYPES["str"]
    root: dict[str, Any] = {}
    for target in sorted(leaves):
        parts = target.split(".")[2:]
        node = root
        for i, part in enumerate(parts):
            entry = node.setdefault(part, {})
            if i == len(parts) - 1:
                if "properties" not in entry:
                    entry.update(copy.deepcopy(leaves[target]))
            else:
                # a leaf that is also a parent (a.b and a.b.c): the object wins
                for key in ("type", "ignore_above"):
                    entry.pop(key, None)
                node = entry.setdefault("properties", {})
    panos = {
        "dynamic": True,
        "properties": root,
    }
    return {
        "_meta": {"description": "panw.panos.* (Elastic's PAN-OS field names) from schemas/panos/"},
        "template": {
            "mappings": {
                "dynamic_templates": [
                    {
                        "panw_strings": {
                            "path_match": "panw.panos.*",
                            "match_mapping_type": "string",
                            "mapping": {"type": "keyword", "ignore_above": 1024},
                        }
                    }
                ],
                "properties": {"panw": {"properties": {"panos": panos}}},
            }
        },
    }


def _fill_prefix(value: Any, prefix: str) -> Any:
    if isinstance(value, str):
        return value.replace("{prefix}", prefix)
    if isinstance(value, list):
        return [_fill_prefix(v, prefix) for v in value]
    if isinstance(value, dict):
        return {_fill_prefix(k, prefix): _fill_prefix(v, prefix) for k, v in value.items()}
    return value


@dataclass
class Templates:
    """What setup puts into Elasticsearch: component templates by name, and the index template."""

    components: dict[str, dict[str, Any]]
    index_template_name: str
    index_template: dict[str, Any]
    fallbacks: dict[str, dict[str, Any]] = field(default_factory=dict)


def desired_templates(prefix: str) -> Templates:
    source = _load_json(ECS_DIR / "index-template.json")
    source.pop("_comment", None)
    components: dict[str, dict[str, Any]] = {}
    composed: list[str] = []
    for short in source["composed_of"]:
        if short == "panw":
            body = panw_component()
        elif short == "decryptscope":
            body = _load_json(ECS_DIR / "decryptscope-component.json")
        else:
            body = _load_json(COMPONENTS_DIR / f"{short}.json")
        name = f"{prefix}-{short}"
        components[name] = body
        composed.append(name)
    index_template = _fill_prefix(source, prefix)
    index_template["composed_of"] = composed
    fallbacks = _load_json(ECS_DIR / "type-fallbacks.json")
    fallbacks.pop("_comment", None)
    return Templates(components, prefix, index_template, fallbacks)


def alerts_template(prefix: str) -> dict[str, Any]:
    """The index template of the alert indices ``<prefix>-*`` (``prefix``: ``alerts_index``)."""
    source = _load_json(ALERTS_TEMPLATE)
    source.pop("_comment", None)
    return _fill_prefix(source, prefix)


def apply_fallback(body: dict[str, Any], missing: str, fallback: dict[str, Any]) -> dict[str, Any]:
    """A copy of a component template with every field of type ``missing`` re-typed."""
    out = copy.deepcopy(body)

    def walk(props: dict[str, Any]) -> None:
        for spec in props.values():
            if not isinstance(spec, dict):
                continue
            if spec.get("type") == missing:
                spec["type"] = fallback["type"]
                for key in fallback.get("drop", ()):
                    spec.pop(key, None)
                spec.update(fallback.get("set", {}))
                if not spec.get("enabled", True):
                    spec.pop("fields", None)
                    spec.pop("synthetic_source_keep", None)
            for nested in ("properties", "fields"):
                if isinstance(spec.get(nested), dict):
                    walk(spec[nested])

    walk(out["template"]["mappings"].get("properties", {}))
    return out


def _es_error_text(exc: BaseException) -> str:
    body = getattr(exc, "body", None)
    return orjson.dumps(body).decode() if body else str(exc)


def _missing_type(text: str) -> str | None:
    found = _NO_HANDLER.search(text)
    return (found.group(1) or found.group(2)) if found else None


def _put_component(client: Any, name: str, body: dict[str, Any], fallbacks: dict) -> dict:
    """Put one component template, re-typing fields the cluster has no handler for."""
    from elasticsearch import ApiError

    for _ in range(len(fallbacks) + 1):
        try:
            client.cluster.put_component_template(name=name, body=body)
            return body
        except ApiError as exc:
            text = _es_error_text(exc)
            missing = _missing_type(text)
            if missing not in fallbacks:
                raise SinkError(f"component template {name}: {text[:500]}") from exc
            body = apply_fallback(body, missing, fallbacks[missing])
    raise SinkError(f"component template {name}: no usable field types")


def _effective_components(client: Any, templates: Templates) -> dict[str, dict[str, Any]]:
    """Desired components as this cluster can hold them (fallbacks applied where needed)."""
    unsupported = _unsupported_types(client, templates)
    out = {}
    for name, body in templates.components.items():
        fitted = body
        for missing in unsupported:
            fitted = apply_fallback(fitted, missing, templates.fallbacks[missing])
        out[name] = fitted
    return out


def _unsupported_types(client: Any, templates: Templates) -> list[str]:
    """Field types of the fallback table the cluster lacks, probed with a throwaway mapping
    validation (a simulate call stores nothing)."""
    from elasticsearch import ApiError

    missing = []
    for kind in templates.fallbacks:
        body = {
            "index_patterns": ["decryptscope-probe-never-*"],
            "template": {"mappings": {"properties": {"probe": {"type": kind}}}},
        }
        try:
            client.indices.simulate_template(body=body)
        except ApiError as exc:
            if _missing_type(_es_error_text(exc)) == kind:
                missing.append(kind)
            else:
                raise SinkError(f"simulating a template: {_es_error_text(exc)[:300]}") from exc
    return missing


def setup_elasticsearch(client: Any, prefix: str) -> list[str]:
    """Create or update the component and index templates (idempotent); returns what it did."""
    templates = desired_templates(prefix)
    done = []
    for name, body in _effective_components(client, templates).items():
        _put_component(client, name, body, templates.fallbacks)
        done.append(f"component template {name}")
    try:
        client.indices.put_index_template(
            name=templates.index_template_name, body=templates.index_template
        )
    except Exception as exc:
        raise SinkError(f"index template {prefix}: {_es_error_text(exc)[:500]}") from exc
    done.append(f"index template {templates.index_template_name} ({prefix}-* alias {prefix})")
    return done


def setup_alerts(client: Any, prefix: str) -> list[str]:
    """Create or update the index template of the alert indices (idempotent)."""
    try:
        client.indices.put_index_template(name=prefix, body=alerts_template(prefix))
    except Exception as exc:
        raise SinkError(f"index template {prefix}: {_es_error_text(exc)[:500]}") from exc
    return [f"index template {prefix} (alerts: {prefix}-* alias {prefix})"]


def _flat_settings(settings: dict[str, Any], prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in settings.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flat_settings(value, f"{name}."))
        else:
            out[name if name.startswith("index.") else f"index.{name}"] = str(value)
    return out


def _normalise(body: dict[str, Any]) -> dict[str, Any]:
    body = copy.deepcopy(body)
    for key in (
        "_meta",
        "created_date_millis",
        "modified_date_millis",
        "created_date",
        "modified_date",
    ):
        body.pop(key, None)
    template = body.get("template", {})
    if "settings" in template:
        template["settings"] = _flat_settings(template["settings"])
    return orjson.loads(orjson.dumps(body, option=orjson.OPT_SORT_KEYS))


def check_elasticsearch(client: Any, prefix: str) -> list[str]:
    """Differences between what setup would write and what the cluster holds (empty: none)."""
    from elasticsearch import NotFoundError

    templates = desired_templates(prefix)
    drift: list[str] = []
    for name, body in _effective_components(client, templates).items():
        try:
            found = client.cluster.get_component_template(name=name)
        except NotFoundError:
            drift.append(f"component template {name}: missing")
            continue
        actual = found["component_templates"][0]["component_template"]
        if _normalise(actual) != _normalise(body):
            drift.append(f"component template {name}: differs")
    drift += _index_template_drift(client, templates.index_template_name, templates.index_template)
    return drift


def check_alerts(client: Any, prefix: str) -> list[str]:
    """Differences between the alert indices' template and what the cluster holds."""
    return _index_template_drift(client, prefix, alerts_template(prefix))


def _index_template_drift(client: Any, name: str, body: dict[str, Any]) -> list[str]:
    from elasticsearch import NotFoundError

    try:
        found = client.indices.get_index_template(name=name)
    except NotFoundError:
        return [f"index template {name}: missing"]
    actual = _normalise(found["index_templates"][0]["index_template"])
    desired = _normalise(body)
    drift = []
    for key in ("index_patterns", "composed_of", "priority", "template"):
        # A template composed of nothing comes back with an empty list.
        if (actual.get(key) or None) != (desired.get(key) or None):
            drift.append(f"index template {name}: {key} differs")
    return drift


def daily_indices(client: Any, prefix: str) -> dict[str, datetime]:
    """The daily indices of ``prefix`` and their day."""
    found = client.indices.get(index=f"{prefix}-*", expand_wildcards="open,closed")
    out = {}
    for name in found:
        match = _DAILY.search(name)
        if match and name.startswith(prefix + "-") and len(name) == len(prefix) + 11:
            y, m, d = (int(x) for x in match.groups())
            out[name] = datetime(y, m, d, tzinfo=UTC)
    return out


def expired_indices(
    names: dict[str, datetime], days: int, now: datetime | None = None
) -> list[str]:
    """The indices whose whole day lies more than ``days`` days before today (UTC)."""
    today = (now or datetime.now(UTC)).replace(hour=0, minute=0, second=0, microsecond=0)
    cutoff = today - timedelta(days=days)
    return sorted(name for name, day in names.items() if day < cutoff)


def apply_retention(client: Any, prefix: str, days: int, *, dry_run: bool = False) -> list[str]:
    """Delete the daily indices older than ``days`` days; returns their names."""
    if days < 0:
        raise ConfigError(f"retention days must be >= 0, got {days}")
    names = expired_indices(daily_indices(client, prefix), days)
    if names and not dry_run:
        client.indices.delete(index=",".join(names))
    return names
