"""What a PAN-OS log type adds to its ECS document beyond copying its columns (pure).

Columns go to their layout's targets in ``pipeline.ecs``; here are the fields that need a rule:
the outcome and action of each type, the parts of a THREAT URL, the file of a THREAT file log,
the administrator and client of a CONFIG change, the client addresses of a GlobalProtect
event, the client address in the text of a SYSTEM authentication event. Names follow
Elastic's ``panw`` integration where ECS has no better field.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

from pipeline.panos.values import to_ip

# THREAT actions that let the traffic through (the Threat log's Action values: alert, allow,
# deny, drop, reset-client, reset-server, reset-both, block-url, block-ip, random-drop,
# sinkhole, syncookie-sent, block-continue, continue, block-override, override-lockout,
# override; elastic/integrations threat.yml reads alert, allow and continue as success).
ALLOWING_ACTIONS = frozenset({"allow", "alert", "continue", "override"})
_CONFIG_RESULT = {"Succeeded": "success", "Failed": "failure", "Unauthorized": "failure"}
_UNSET_IPS = frozenset({"0.0.0.0", "::"})
# THREAT subtypes whose URL/Filename column names a file (Threat Log Fields, URL/Filename).
_FILE_SUBTYPES = frozenset({"file", "virus", "wildfire", "wildfire-virus", "data"})
# "... server address 'x', auth protocol 'PAP', From: 192.0.2.7." (SYSTEM auth events).
_FROM = re.compile(r"\bFrom: ([0-9A-Fa-f:.]+?)\.?\s*$")
# URL without query and fragment -> its ECS parts (scheme, domain, port, path, extension).
_BASES: dict[str, dict[str, Any]] = {}
_BASES_MAX = 1024

Derive = Callable[[Mapping[str, Any], dict, dict, dict, dict], None]


def _action_outcome(action: object) -> str | None:
    if not action:
        return None
    return "success" if action in ALLOWING_ACTIONS else "failure"


def url_parts(text: str, scheme: str) -> dict[str, Any] | None:
    """ECS ``url.*`` of a URL PAN-OS logs without its scheme (``www.example.com/a?b=1``); the
    scheme is the session's. None when the text is not a URL."""
    full = text if "://" in text else f"{scheme}://{text}"
    if " " in full or not full.isprintable():
        # urlsplit drops whitespace and control characters first: let it see all of it.
        base, query, fragment = full, None, None
    else:
        # urlsplit cuts the fragment at the first "#", then the query at the first "?"; the
        # rest (scheme, host, port, path) is split once per distinct base.
        head, _, fragment = full.partition("#")
        base, _, query = head.partition("?")
    split = _BASES.get(base)
    if split is None:
        split = _split_base(base)
    if split is _NOT_A_URL:
        return None
    url: dict[str, Any] = {"original": full, "full": full, **split}
    if query is None:
        return url
    if query:
        url["query"] = query
    if fragment:
        url["fragment"] = fragment
    return url


_NOT_A_URL: dict[str, Any] = {}


def _split_base(base: str) -> dict[str, Any]:
    try:
        parts = urlsplit(base)
        host, port = parts.hostname, parts.port
    except ValueError:
        parts, host, port = None, None, None
    split: dict[str, Any] = _NOT_A_URL
    if parts is not None and host:
        # ECS keeps the brackets of an IPv6 literal in url.domain (RFC 2732).
        split = {"scheme": parts.scheme, "domain": f"[{host}]" if ":" in host else host}
        if port is not None:
            split["port"] = port
        if parts.path:
            split["path"] = parts.path
            name = parts.path.rpartition("/")[2]
            if "." in name:
                split["extension"] = name.rpartition(".")[2].lower()
        if parts.query:
            split["query"] = parts.query
        if parts.fragment:
            split["fragment"] = parts.fragment
    if len(_BASES) >= _BASES_MAX:
        _BASES.clear()
    _BASES[base] = split
    return split


def _is_ip(text: str) -> bool:
    # Host names have a letter; IPv4 literals only digits and dots, IPv6 ones colons.
    if not (":" in text or text.replace(".", "").isdigit()):
        return False
    try:
        to_ip(text, None)  # type: ignore[arg-type]
    except ValueError:
        return False
    return True


def _scheme(record: Mapping[str, Any]) -> str:
    # URL filtering sees HTTP and HTTPS: TLS on 443 or App-ID "ssl" means https.
    if record.get("dport") == 443 or record.get("app") in ("ssl", "ssl-base"):
        return "https"
    return "http"


def threat(record: Mapping[str, Any], doc: dict, event: dict, source: dict, dest: dict) -> None:
    action = record.get("action")
    outcome = _action_outcome(action)
    if outcome is not None:
        event["outcome"] = outcome
        event["action"] = action
    misc = record.get("misc")
    if not misc:
        return
    subtype = record.get("subtype")
    if subtype == "url":
        url = url_parts(misc, _scheme(record))
        if url is not None:
            doc["url"] = url
            if not _is_ip(url["domain"].strip("[]")):
                dest["domain"] = url["domain"]
    elif subtype in _FILE_SUBTYPES:
        if "/" in misc or "\\" in misc:
            sep = "/" if misc.rfind("/") > misc.rfind("\\") else "\\"
            doc["file"] = {"path": misc, "name": misc.rpartition(sep)[2]}
        else:
            doc["file"] = {"name": misc}


def config(record: Mapping[str, Any], doc: dict, event: dict, source: dict, dest: dict) -> None:
    cmd = record.get("cmd")
    if cmd:
        event["action"] = f"cmd-{cmd}"
    result = record.get("result")
    if result:
        event["outcome"] = _CONFIG_RESULT.get(result, "unknown")
    host = record.get("host")
    if host:
        doc["host"] = {"ip": [host]} if _is_ip(host) else {"name": host}
    admin = record.get("admin")
    if admin:
        doc["user"] = {"name": admin}


def globalprotect(
    record: Mapping[str, Any], doc: dict, event: dict, source: dict, dest: dict
) -> None:
    get = record.get
    for key in ("private_ip", "private_ipv6"):
        ip = get(key)
        if ip and ip not in _UNSET_IPS:
            source["ip"] = ip
            doc.setdefault("host", {})["ip"] = [ip]
            break
    for key in ("public_ip", "public_ipv6"):
        ip = get(key)
        if ip and ip not in _UNSET_IPS:
            source["nat"] = {"ip": ip}
            break
    status = get("status")
    if status in ("success", "failure"):
        event["outcome"] = status


def system(record: Mapping[str, Any], doc: dict, event: dict, source: dict, dest: dict) -> None:
    eventid = record.get("eventid") or ""
    if eventid.endswith("-success"):
        event["outcome"] = "success"
    elif eventid.endswith(("-fail", "-failure", "-failed")):
        event["outcome"] = "failure"
    if record.get("subtype") == "auth":
        found = _FROM.search(record.get("opaque") or "")
        if found is not None and _is_ip(found.group(1)):
            source["ip"] = to_ip(found.group(1), None)  # type: ignore[arg-type]


def authentication(
    record: Mapping[str, Any], doc: dict, event: dict, source: dict, dest: dict
) -> None:
    result = str(record.get("event") or "").lower()
    event["outcome"] = "failure" if "fail" in result else "success"


def userid(record: Mapping[str, Any], doc: dict, event: dict, source: dict, dest: dict) -> None:
    # login, logout, register-tag, unregister-tag (User-ID Log Fields, Subtype)
    subtype = record.get("subtype")
    if subtype:
        event["action"] = subtype


def by_action(record: Mapping[str, Any], doc: dict, event: dict, source: dict, dest: dict) -> None:
    outcome = _action_outcome(record.get("action"))
    if outcome is not None:
        event["outcome"] = outcome


DERIVE: dict[str, Derive] = {
    "THREAT": threat,
    "CONFIG": config,
    "GLOBALPROTECT": globalprotect,
    "SYSTEM": system,
    "AUTHENTICATION": authentication,
    "USERID": userid,
    "TUNNEL": by_action,
    "SCTP": by_action,
    "GTP": by_action,
}
