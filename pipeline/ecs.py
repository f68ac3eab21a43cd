"""Record (+ diagnosis) -> Elastic Common Schema document (pure).

Column targets come from the layout files (``schemas/panos/*.csv``): vendor fields keep
Elastic's ``panw.panos.*`` names. Where Elastic's mapping is wrong for TLS, ECS wins: the server
certificate goes to ``tls.server.x509.*``, ``tls.established`` is false on failure, the SNI is also
``destination.domain``, and ``event.outcome`` / ``event.reason`` say how the handshake or
session ended. The diagnosis lives under ``decryptscope.*``."""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from pipeline.community_id import community_id, proto_number
from pipeline.diagnosis import event_mode
from pipeline.ecs_logtypes import ALLOWING_ACTIONS, DERIVE
from pipeline.errors import ConfigError
from pipeline.panos.layouts import (
    SKIP,
    common_layout,
    flag_bits,
    layouts,
    log_types,
    session_labels_targets,
)

ECS_VERSION = "8.17.0"
_OBSERVER = {"vendor": "Palo Alto Networks", "product": "PAN-OS", "type": "firewall"}

_LOG_TYPES = log_types()
# (bit, label, claims decryption) of the Flags column (schemas/panos/flags.csv).
_FLAG_BITS = tuple((f.bit, f.label, f.decrypted) for f in flag_bits())
_DECRYPTED_LABELS = frozenset(f.label for f in flag_bits() if f.decrypted)
_NO_DECRYPT = "No Decrypt"
_NO_STAGE = frozenset({"", "Unknown", "unknown", "None", "none"})
_TRAFFIC_TYPE = {"start": "start", "end": "end", "drop": "denied", "deny": "denied"}
_TRAFFIC_ACTION = {
    "start": "flow_started",
    "end": "flow_terminated",
    "drop": "flow_dropped",
    "deny": "flow_denied",
}
# Session end reasons that mean the firewall ended the session on purpose or failed it.
_FAILED_END = frozenset(
    {
        "threat",
        "policy-deny",
        "decrypt-cert-validation",
        "decrypt-unsupport-param",
        "decrypt-error",
        "resources-unavailable",
    }
)
# event.duration is in nanoseconds, a signed 64-bit integer.
_MAX_DURATION_S = (2**63 - 1) // 1_000_000_000
_NO_REASON = frozenset({"n/a", "unknown", ""})
_NO_ERROR_INDEX = frozenset({"None", "none", ""})
_UNSET_IPS = frozenset({"0.0.0.0", "::"})
_HASH_BY_LENGTH = {32: "md5", 40: "sha1", 64: "sha256"}
# Keys whose ECS fields are written by code below rather than by their layout target.
_SPECIAL = frozenset(
    {
        "time_generated",
        "flags",
        "actionflags",
        "tls_version",
        "cert_serial",
        "fingerprint",
        "notbefore",
        "notafter",
        "cert_ver",
        "cert_size",
        "srcuser",
        "dstuser",
        "natsrc",
        "natdst",
        "natsport",
        "natdport",
        "sni",
        "proto",
        "device_name",
        "type",
        # user names: source.user / destination.user with the domain split off, and user.*
        "user",
        # GlobalProtect: the client address is the private one, its NAT the public one
        "private_ip",
        "public_ip",
        # CONFIG: the administrator's client (host.ip, or host.name when not an address)
        "host",
        "admin",
    }
)

# A target is (parent path, leaf key, time kind: 0 none, 1 local time, 2 stamp), e.g.
# (("source", "nat"), "ip", 0).
Target = tuple[tuple[str, ...], str, int]
Fill = Callable[[Mapping[str, Any]], dict]


def _target(target: str, kind: str) -> Target:
    parts = tuple(target.split("."))
    if not all(parts):
        raise ConfigError(f"bad ECS target {target!r} in a layout file")
    # "time": local times, shared objects of the parser's time cache (their text is cached);
    # "isotime": a stamp of its own per event (formatted, not cached).
    return parts[:-1], parts[-1], {"time": 1, "isotime": 2}.get(kind, 0)


def _build_targets() -> dict[str, dict[str, Target]]:
    per_type: dict[str, dict[str, Target]] = {}
    common = {
        c.name: _target(c.target, c.type)
        for c in common_layout().columns
        if c.target and c.name != SKIP and c.name not in _SPECIAL
    }
    for log_type, layout in layouts().items():
        t = dict(common)
        for c in layout.columns:
            if c.target and c.name != SKIP and c.name not in _SPECIAL:
                t[c.name] = _target(c.target, c.type)
        per_type[log_type] = t
    session = dict(per_type.get("TRAFFIC", common))
    for name, (target, kind) in session_labels_targets().items():
        if name not in _SPECIAL:
            session[name] = _target(target, kind)
    per_type["SESSION"] = session
    per_type[""] = common
    return per_type


# Datetimes from the parser are shared (one object per time text and zone, from the time
# cache), so their text is cached by identity: no hashing of the datetime (which would compute
# its UTC offset). The entry keeps the datetime alive, so its id cannot be reused meanwhile.
_ISO_CACHE: dict[int, tuple[datetime, str]] = {}
_ISO_CACHE_MAX = 4096


def _iso(value: datetime) -> str:
    entry = _ISO_CACHE.get(id(value))
    if entry is not None and entry[0] is value:
        return entry[1]
    text = value.isoformat(timespec="milliseconds")
    # One event's own time (high-resolution timestamp) is written twice (@timestamp and
    # panw.panos.*), so it is worth caching too; the shared ones come back after a clear.
    if len(_ISO_CACHE) >= _ISO_CACHE_MAX:
        _ISO_CACHE.clear()
    _ISO_CACHE[id(value)] = (value, text)
    return text


# The objects to_ecs writes into besides the copied columns: the fill always creates them and
# hands them back, so to_ecs needs no lookups or setdefault chains. The first three are always
# in the document; the others are dropped at the end when nothing was written into them.
_ALWAYS = (("event",), ("observer",), ("panw",), ("panw", "panos"))
_MAYBE = (("source",), ("destination",), ("network",))
_HANDED = (("event",), ("observer",), ("panw", "panos"), *_MAYBE)


def _compile_fill(log_type: str, targets: Mapping[str, Target]) -> Fill:
    """Compile, once per log type, straight-line code that copies a record's values to their
    targets: one local dict per parent object, attached to the document only when non-empty.
    (A loop over the record with a path walk per value costs twice as much per event.)
    Returns ``(doc, event, observer, panw.panos, source, destination, network)``."""
    parents = {parts[:i] for parts, _, _ in targets.values() for i in range(1, len(parts) + 1)}
    parents.update(_ALWAYS, _MAYBE)
    leaves = {(*parts, leaf) for parts, leaf, _ in targets.values()}
    if clash := parents & leaves:
        raise ConfigError(f"{log_type}: {'.'.join(min(clash))} is both a value and an object")
    # An object that holds one value and nothing else (``rule.name``) is written in one go
    # when the value is there, rather than made empty for every event and attached if filled.
    leaf_count = Counter(parts for parts, _, _ in targets.values())
    nested = {p[:-1] for p in parents}
    single = {
        p
        for p in parents
        if leaf_count[p] == 1 and p not in nested and p not in _ALWAYS and p not in _MAYBE
    }
    order = sorted(parents - single, key=lambda p: (len(p), p))
    var = {p: f"p{i}" for i, p in enumerate(order)}
    var[()] = "doc"
    src = ["def fill(rec):", "    get = rec.get", "    doc = {}"]
    src += [f"    {var[p]} = {{}}" for p in order]
    for key, (parts, leaf, time_kind) in targets.items():
        if parts in single:
            store = f"{var[parts[:-1]]}[{parts[-1]!r}] = {{{leaf!r}: v}}"
        else:
            store = f"{var[parts]}[{leaf!r}] = v"
        src += [f"    v = get({key!r})", "    if v is not None:"]
        if time_kind == 1:
            # The ISO text cache looked up inline: a call per time value costs more.
            src += [
                "        if v.__class__ is _datetime:",
                "            e = _iso_cached(id(v))",
                "            v = e[1] if e is not None and e[0] is v else _iso(v)",
            ]
        elif time_kind == 2:
            src += [
                "        if v.__class__ is _datetime:",
                '            v = v.isoformat(timespec="milliseconds")',
            ]
        src.append(f"        {store}")
    for p in sorted(order, key=len, reverse=True):
        attach = f"{var[p[:-1]]}[{p[-1]!r}] = {var[p]}"
        if p in _ALWAYS or p in _MAYBE:
            src.append(f"    {attach}")
        else:
            src += [f"    if {var[p]}:", f"        {attach}"]
    src.append(f"    return doc, {', '.join(var[p] for p in _HANDED)}")
    namespace: dict[str, Any] = {
        "_iso": _iso,
        "_iso_cached": _ISO_CACHE.get,
        "_datetime": datetime,
    }
    exec(compile("\n".join(src), f"<ecs fill {log_type or 'common'}>", "exec"), namespace)
    return namespace["fill"]


_FILLS: dict[str, Fill] = {t: _compile_fill(t, targets) for t, targets in _build_targets().items()}
_FILL_COMMON = _FILLS[""]
_LABELS_CACHE: dict[int, dict[str, bool]] = {}
_IANA: dict[str, str] = {}
_NETWORK = ("network",)


def _labels(flags: int) -> dict[str, bool]:
    labels = _LABELS_CACHE.get(flags)
    if labels is None:
        labels = {name: True for bit, name, _ in _FLAG_BITS if flags & bit}
        if len(_LABELS_CACHE) < 4096:
            _LABELS_CACHE[flags] = labels
    return labels.copy()


def _handshake_seen(record: Mapping[str, Any]) -> bool:
    """Whether the Handshake Stage columns say a handshake took place."""
    get = record.get
    return get("hs_stage_c2f", "") not in _NO_STAGE or get("hs_stage_f2s", "") not in _NO_STAGE


def _user(value: str) -> dict[str, str]:
    """``DOMAIN\\name`` and ``name@domain`` (User-ID's two spellings) -> ECS name and domain,
    as Elastic's mapping splits them."""
    domain, sep, name = value.rpartition("\\")
    if sep and name:
        return {"name": name, "domain": domain}
    name, sep, domain = value.partition("@")
    if sep and name and domain and "@" not in domain:
        return {"name": name, "domain": domain}
    return {"name": value}


def _timestamp(record: Mapping[str, Any]) -> datetime | None:
    get = record.get
    for key in ("high_res_timestamp", "time_generated", "receive_time", "start"):
        value = get(key)
        if value.__class__ is datetime:
            return value
    syslog_time = get("_syslog_time")
    if syslog_time and "T" in syslog_time:
        try:
            parsed = datetime.fromisoformat(syslog_time)
        except ValueError:
            parsed = None
        if parsed is not None and parsed.tzinfo is not None:
            return parsed
    received = get("_received_at")
    return received if isinstance(received, datetime) else None


def _outcome(log_type: str, record: Mapping[str, Any]) -> str | None:
    if log_type == "DECRYPTION":
        if record.get("error") or record.get("err_index", "None") not in _NO_ERROR_INDEX:
            return "failure"
        if record.get("proxy_type") == _NO_DECRYPT:
            # The firewall does not take part in a No Decrypt handshake: its TLS Version is
            # what it saw go by; only handshake stages say the session got through.
            return "success" if _handshake_seen(record) else "unknown"
        if record.get("tls_version") or record.get("hs_stage_c2f"):
            return "success"
        return "unknown"
    if log_type == "TRAFFIC":
        action = record.get("action")
        if (action and action != "allow") or record.get("session_end_reason") in _FAILED_END:
            return "failure"
        return "success" if action else "unknown"
    if log_type == "SESSION":
        stage = str(record.get("tracker_stage_firewall", "")).lower()
        if record.get("session_end_reason") in _FAILED_END or "fail" in stage:
            return "failure"
        return "unknown"
    return None


def _iana(proto: str) -> str:
    iana = _IANA.get(proto)
    if iana is None:
        number = proto_number(proto)
        iana = str(number) if number is not None else ""
        if len(_IANA) < 256:
            _IANA[proto] = iana
    return iana


def to_ecs(
    record: Mapping[str, Any],
    diagnosis: Any = None,
    *,
    correlation: Mapping[str, Any] | None = None,
    original: str | None = None,
) -> dict:
    """The ECS document of one record (nested as Elasticsearch stores ``_source``)."""
    get = record.get
    log_type = get("type") or ""
    doc, event, observer, panw, source, destination, network = (
        _FILLS.get(log_type) or _FILL_COMMON
    )(record)
    ts = get("high_res_timestamp")
    if ts.__class__ is datetime:
        # Written once already, by the column's own target.
        doc["@timestamp"] = panw.get("high_resolution_timestamp") or _iso(ts)
    else:
        doc["@timestamp"] = _iso(_timestamp(record) or datetime.now(UTC))
    doc["ecs"] = {"version": ECS_VERSION}
    observer.update(_OBSERVER)
    kind = _LOG_TYPES.get(log_type)
    if kind is not None:
        event["kind"] = kind.kind
        event["category"] = list(kind.categories)
    else:
        event["kind"] = "event"
        event["category"] = list(_NETWORK)
    event["module"] = "panw"
    event["dataset"] = "panw.panos"
    panw["type"] = log_type
    tg = get("time_generated")
    if tg.__class__ is datetime:
        e = _ISO_CACHE.get(id(tg))
        text = e[1] if e is not None and e[0] is tg else _iso(tg)
        event["timezone"] = "Z" if text.endswith("+00:00") else text[-6:]

    # --- who and where ------------------------------------------------------------------
    host = get("device_name") or get("_host")
    if host:
        observer["hostname"] = host
    src, dst = get("src"), get("dst")
    natsrc, natdst = get("natsrc"), get("natdst")
    if natsrc in _UNSET_IPS:
        natsrc = None
    if natdst in _UNSET_IPS:
        natdst = None
    if natsrc:
        nat = source.get("nat")
        if nat is None:
            nat = source["nat"] = {}
        nat["ip"] = natsrc
        if get("natsport"):
            nat["port"] = record["natsport"]
    if natdst:
        nat = destination.get("nat")
        if nat is None:
            nat = destination["nat"] = {}
        nat["ip"] = natdst
        if get("natdport"):
            nat["port"] = record["natdport"]
    users = []
    user = get("srcuser") or get("user")
    if user:
        user = source["user"] = _user(user)
        # ECS user.* is the user the event is about; Elastic's mapping copies source.user.
        doc["user"] = dict(user)
        users.append(user["name"])
    user = get("dstuser")
    if user:
        user = destination["user"] = _user(user)
        if user["name"] not in users:
            users.append(user["name"])

    # --- network --------------------------------------------------------------------------
    proto = get("proto")
    if proto:
        network["transport"] = proto.lower()
        iana = _IANA.get(proto)
        if iana is None:
            iana = _iana(proto)
        if iana:
            network["iana_number"] = iana
    if src:
        network["type"] = "ipv6" if ":" in src else "ipv4"
        if dst and proto:
            sport, dport = get("sport"), get("dport")
            cid = community_id(src, dst, proto, sport, dport)
            if cid is not None:
                network["community_id"] = cid
            if natsrc or natdst:
                ncid = community_id(
                    natsrc or src,
                    natdst or dst,
                    proto,
                    get("natsport") or sport,
                    get("natdport") or dport,
                )
                if ncid is not None:
                    panw.setdefault("network", {})["nat"] = {"community_id": ncid}

    flags = get("flags")
    if flags.__class__ is int:
        labels = _LABELS_CACHE.get(flags)
        labels = labels.copy() if labels is not None else _labels(flags)
        if labels and get("proxy_type") == _NO_DECRYPT:
            for name in _DECRYPTED_LABELS:
                labels.pop(name, None)
        if labels:
            doc["labels"] = labels
    actionflags = get("actionflags")
    if actionflags.__class__ is int:
        panw["action_flags"] = hex(actionflags)

    # --- outcome --------------------------------------------------------------------------
    outcome = _outcome(log_type, record)
    subtype = get("subtype")
    action = get("action")
    if log_type == "TRAFFIC":
        types = ["connection"]
        if subtype in _TRAFFIC_TYPE:
            types.append(_TRAFFIC_TYPE[subtype])
            event["action"] = _TRAFFIC_ACTION[subtype]
    elif log_type == "DECRYPTION":
        types = (
            ["connection", "protocol", "error"]
            if outcome == "failure"
            else [
                "connection",
                "protocol",
            ]
        )
    elif log_type == "SESSION":
        types = ["connection", "info"]
    elif log_type == "CONFIG":
        types = ["change"]
    else:
        types = ["info"]
    if action:
        verdict = "allowed" if action in ALLOWING_ACTIONS else "denied"
        if verdict not in types:
            types.append(verdict)
    event["type"] = types
    if outcome is not None:
        event["outcome"] = outcome
    reason = get("error") if log_type == "DECRYPTION" else get("session_end_reason")
    if reason and reason not in _NO_REASON:
        event["reason"] = reason
    if log_type == "TRAFFIC":
        elapsed = get("elapsed")
        if elapsed.__class__ is int and 0 <= elapsed <= _MAX_DURATION_S:
            event["duration"] = elapsed * 1_000_000_000
    else:
        derive = DERIVE.get(log_type)
        if derive is not None:
            derive(record, doc, event, source, destination)

    # --- TLS ------------------------------------------------------------------------------
    sni = get("sni")
    if log_type == "DECRYPTION":
        _tls(doc, record, outcome, panw, destination)

    # --- related --------------------------------------------------------------------------
    related: dict[str, list[str]] = {}
    # Spelt out rather than looped or comprehended: this runs for every event. The addresses
    # are read back from the document, where every log type's columns have landed.
    ip = src if src is not None else source.get("ip")
    ips = [ip] if ip and ip not in _UNSET_IPS else []
    ip = dst if dst is not None else destination.get("ip")
    if ip and ip not in _UNSET_IPS and ip not in ips:
        ips.append(ip)
    if natsrc and natsrc not in ips:
        ips.append(natsrc)
    if natdst and natdst not in ips:
        ips.append(natdst)
    if log_type in _RELATED_ELSEWHERE:
        _related_extra(doc, source, ips, users)
    if ips:
        related["ip"] = ips
    if host:
        related["hosts"] = [host, sni] if sni and sni != host else [host]
    elif sni:
        related["hosts"] = [sni]
    fingerprint = get("fingerprint")
    if fingerprint:
        related["hash"] = [fingerprint.lower()]
    if users:
        related["user"] = users
    if related:
        doc["related"] = related

    if not source:
        del doc["source"]
    if not destination:
        del doc["destination"]
    if not network:
        del doc["network"]

    # --- the diagnosis --------------------------------------------------------------------
    if diagnosis is not None:
        ds = diagnosis.as_dict()
        ds["failure"] = True
    else:
        ds = {"failure": False}
        mode = event_mode(record)
        if mode is not None:
            ds["mode"] = mode
    if correlation:
        ds["correlation"] = dict(correlation)
    doc["decryptscope"] = ds

    text = original if original is not None else get("_message") or get("_original")
    if text:
        event["original"] = text
    return doc


# Log types that write addresses or names outside source/destination (see ecs_logtypes).
_RELATED_ELSEWHERE = frozenset({"CONFIG", "GLOBALPROTECT"})


def _related_extra(doc: dict, source: dict, ips: list[str], users: list[str]) -> None:
    """Addresses and names other log types write outside source/destination: a translated
    client address (GlobalProtect), host.ip (CONFIG, GlobalProtect), the CONFIG administrator."""
    nat = source.get("nat")
    extra = [nat.get("ip")] if nat else []
    host = doc.get("host")
    if host:
        extra += host.get("ip", ())
    for ip in extra:
        if ip and ip not in _UNSET_IPS and ip not in ips:
            ips.append(ip)
    user = doc.get("user")
    if user and user["name"] not in users:
        users.append(user["name"])


def _offset(value: datetime) -> str:
    text = _iso(value)
    return "Z" if text.endswith("+00:00") else text[-6:]


def _tls(
    doc: dict,
    record: Mapping[str, Any],
    outcome: str | None,
    panw: dict,
    destination: dict,
) -> None:
    get = record.get
    sni = get("sni")
    tls = doc.get("tls")
    if tls is None:
        tls = {}
    version = get("tls_version")
    if version:
        split = _TLS_VERSIONS.get(version)
        if split is None:
            split = _tls_version(version)
        if split[0]:
            tls["version_protocol"], tls["version"] = split
        else:
            panw.setdefault("tls", {})["version"] = version
    if outcome in ("failure", "success"):
        tls["established"] = outcome == "success"
    if sni:
        client = tls.get("client")
        if client is None:
            client = tls["client"] = {}
        client["server_name"] = sni
        destination["domain"] = sni
    server = tls.get("server") or {}
    x509 = server.get("x509") or {}
    serial = get("cert_serial")
    if serial:
        x509["serial_number"] = serial.upper()
    value = get("notbefore")
    if value.__class__ is datetime:
        e = _ISO_CACHE.get(id(value))
        x509["not_before"] = e[1] if e is not None and e[0] is value else _iso(value)
    value = get("notafter")
    if value.__class__ is datetime:
        e = _ISO_CACHE.get(id(value))
        x509["not_after"] = e[1] if e is not None and e[0] is value else _iso(value)
    size = get("cert_size")
    if size.__class__ is int and size > 0:
        x509["public_key_size"] = size
    cert_ver = get("cert_ver")
    if cert_ver and x509:
        x509["version_number"] = cert_ver.lstrip("Vv")
    fingerprint = get("fingerprint")
    if fingerprint:
        algo = _HASH_BY_LENGTH.get(len(fingerprint))
        if algo and _is_hex(fingerprint):
            server["hash"] = {algo: fingerprint.lower()}
    if x509:
        server["x509"] = x509
    if server:
        tls["server"] = server
    if tls:
        doc["tls"] = tls


_TLS_VERSIONS: dict[str, tuple[str, str]] = {}


def _tls_version(version: str) -> tuple[str, str]:
    """ "TLS1.2" -> ("tls", "1.2"); ("", "") for a text without a protocol and a number."""
    head = version.rstrip("0123456789.")
    split = (head.lower(), version[len(head) :]) if head and head != version else ("", "")
    if len(_TLS_VERSIONS) < 256:
        _TLS_VERSIONS[version] = split
    return split


def _is_hex(text: str) -> bool:
    # Stripping hex digits from both ends leaves something iff a non-hex character is inside.
    return not text.lower().strip("0123456789abcdef")


def document_id(record: Mapping[str, Any]) -> str:
    """Elasticsearch ``_id``: serial, log type and sequence number (stable across replays);
    records without a sequence number use a digest of their text."""
    serial = record.get("serial") or record.get("_host") or "-"
    log_type = record.get("type") or "-"
    seqno = record.get("seqno")
    if seqno is not None:
        return f"{serial}:{log_type}:{seqno}"
    text = record.get("_original") or ""
    digest = hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=12).hexdigest()
    return f"{serial}:{log_type}:h{digest}"


def index_name(stamp: str, prefix: str) -> str:
    """``<prefix>-YYYY.MM.DD`` of an ECS ``@timestamp`` (its UTC day)."""
    # Already UTC (what the pipeline writes for UTC devices): the day is the date as written.
    if len(stamp) >= 20 and stamp.endswith(("+00:00", "Z")):
        day = stamp[:10]
        if day[4:5] == "-" and day[7:8] == "-" and day.replace("-", "").isdigit():
            return f"{prefix}-{day[:4]}.{day[5:7]}.{day[8:]}"
    try:
        when = datetime.fromisoformat(stamp).astimezone(UTC)
    except (TypeError, ValueError):
        when = datetime.now(UTC)
    return f"{prefix}-{when:%Y.%m.%d}"
