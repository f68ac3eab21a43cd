"""Validation against the official OCSF 1.8.0 schema, offline: the JSON Schemas packaged by
``ocsf-json-schema``, checked with ``jsonschema`` (shared by the unit and end-to-end tests)."""

from __future__ import annotations

from jsonschema import Draft202012Validator
from ocsf_json_schema import OcsfJsonSchemaEmbedded, get_ocsf_schema

OFFICIAL = get_ocsf_schema(version="1.8.0")  # packaged: no network
SCHEMA = OcsfJsonSchemaEmbedded(OFFICIAL)
_VALIDATORS: dict[tuple[int, tuple[str, ...]], Draft202012Validator] = {}


def schema_errors(event: dict) -> list[str]:
    """What the official OCSF 1.8.0 schema finds wrong with ``event`` (its class and profiles)."""
    profiles = tuple(event["metadata"].get("profiles", ()))
    key = (event["class_uid"], profiles)
    if key not in _VALIDATORS:
        name = SCHEMA.lookup_class_name_from_uid(class_uid=event["class_uid"])
        schema = SCHEMA.get_class_schema(class_name=name, profiles=list(profiles))
        Draft202012Validator.check_schema(schema)
        _VALIDATORS[key] = Draft202012Validator(schema)
    return [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in _VALIDATORS[key].iter_errors(event)
    ]
