"""Decryption coverage: whether a TLS session was decrypted, from the record that says so
(pure). The rules are data, ``schemas/coverage.toml`` (read here and nowhere else).

* a TRAFFIC end: decrypted when its Flags carry the decrypted bit; a TLS session left
  undecrypted when it does not and its application or port is TLS's;
* a DECRYPTION log: not decrypted when its Proxy Type is "No Decrypt", decrypted otherwise.

A failed handshake is neither (the failure metrics count it). ``decrypted(record, failed)``
answers for one record; ``mark(doc, record, failed)`` writes the answer into the record's ECS
document as ``decryptscope.decrypted``, so that Elasticsearch can rank the undecrypted
destinations by sessions and bytes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from pipeline.errors import ConfigError
from pipeline.resources import SCHEMAS, read_toml

RULES_FILE = SCHEMAS / "coverage.toml"
COVERAGE_TYPES = frozenset({"TRAFFIC", "DECRYPTION"})


@dataclass(frozen=True)
class Rules:
    decrypted_flag: int
    no_decrypt: str
    applications: frozenset[str]
    transport: str
    ports: frozenset[int]


@cache
def rules(path: str | None = None) -> Rules:
    source = Path(path) if path else RULES_FILE
    data = read_toml(source, "coverage rules", schema=1)
    try:
        return Rules(
            decrypted_flag=int(data["decrypted_flag"]),
            no_decrypt=str(data["no_decrypt_proxy_type"]),
            applications=frozenset(str(a) for a in data["applications"]),
            transport=str(data["transport"]),
            ports=frozenset(int(p) for p in data["ports"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"coverage rules {source}: {exc}") from exc


_RULES = rules()
_FLAG = _RULES.decrypted_flag
_NO_DECRYPT = _RULES.no_decrypt
_APPS = _RULES.applications
_TRANSPORT = _RULES.transport
_PORTS = _RULES.ports


def decrypted(record: Mapping[str, Any], failed: bool = False) -> bool | None:
    """True: a TLS session the firewall decrypted; False: one it let through undecrypted;
    None: the record does not say (not a session end, not TLS, a failed handshake)."""
    if failed:
        return None
    get = record.get
    log_type = get("type")
    if log_type == "TRAFFIC":
        if get("subtype") != "end":
            return None
        flags = get("flags")
        if flags.__class__ is int and flags & _FLAG:
            return True
        if get("app") in _APPS:
            return False
        if get("proto") == _TRANSPORT and get("dport") in _PORTS:
            return False
        return None
    if log_type == "DECRYPTION":
        if get("error"):
            return None
        return get("proxy_type") != _NO_DECRYPT
    return None


def mark(doc: dict[str, Any], record: Mapping[str, Any], failed: bool = False) -> bool | None:
    """Set ``decryptscope.decrypted`` on a TLS session's document; returns the value."""
    value = decrypted(record, failed)
    if value is not None:
        doc["decryptscope"]["decrypted"] = value
    return value
