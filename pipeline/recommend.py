"""Evidence-gated recommendations: the configuration changes the diagnosed failures call for,
each with its evidence and a review-by date.

Input: ECS documents with their ids, the same whether they come from the chain
(``Document.source`` of log files) or from Elasticsearch (``_source``); a later version of a
document replaces an earlier one, as it does in the index, so both paths see the same set and
give the same result. Output: one plain dict (``Evidence.recommend``), everything in it sorted,
nothing in it taken from the clock: the same evidence gives the same recommendations.

Which failure leads to which kind of change is data, ``schemas/recommendations.toml`` (read
here only): exclusions from decryption (gated: enough failures from enough clients over long
enough, no decrypted session to the same destination, never for a failure whose block is the
protection), trust-chain fixes, Forward Trust CA deployment, Decryption profile settings and
the KB 83656 checks for servers behind SSL Inbound Inspection.

A session whose log lines were joined (``decryptscope.correlation.joined``) is one failure: its
DECRYPTION document counts, else its TRAFFIC document, else its ``show session id`` one.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
import tomllib
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

from pipeline import resources
from pipeline.errors import ConfigError

DATA_PATH = resources.SCHEMAS / "recommendations.toml"

# The ECS fields read here: all a document needs to carry (the Elasticsearch query asks for
# these only, so both inputs hold the same fields).
SOURCE_FIELDS = (
    "@timestamp",
    "decryptscope.failure",
    "decryptscope.cause",
    "decryptscope.mode",
    "decryptscope.correlation.key",
    "decryptscope.correlation.joined",
    "panw.panos.type",
    "panw.panos.flow_id",
    "panw.panos.policy.name",
    "panw.panos.root_common_name.value",
    "panw.panos.tls.auth",
    "panw.panos.tls.key_exchange_algorithm",
    "observer.serial_number",
    "observer.hostname",
    "observer.ingress.zone",
    "observer.egress.zone",
    "rule.name",
    "source.ip",
    "source.user.name",
    "source.user.domain",
    "destination.ip",
    "destination.nat.ip",
    "tls.client.server_name",
    "tls.server.x509.subject.common_name",
    "tls.server.x509.issuer.common_name",
    "tls.cipher",
    "tls.version",
    "tls.version_protocol",
    "tls.established",
)
# A joined session counts once: by the first of these log types it has.
_COUNT_ORDER = ("DECRYPTION", "TRAFFIC", "SESSION")
# Evidence lists shown in full only up to this many entries (counts are always complete).
LIST_LIMIT = 20
_NAME_CHARS = re.compile(r"[^a-z0-9._-]+")


@dataclass(frozen=True)
class Gates:
    """When a destination may be excluded from decryption; when to review a recommendation."""

    min_failures: int = 20
    min_clients: int = 3
    min_span_s: float = 3600.0
    review_days: int = 30

    @classmethod
    def from_settings(cls, settings: Any) -> Gates:
        return cls(
            settings.recommend_min_failures,
            settings.recommend_min_clients,
            settings.recommend_min_span_s,
            settings.recommend_review_days,
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "min_failures": self.min_failures,
            "min_clients": self.min_clients,
            "min_span_s": self.min_span_s,
            "review_days": self.review_days,
        }


# --- the data file -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Route:
    cause: str
    modes: frozenset[str]
    kind: str
    why: str
    parameter: str | None = None
    otherwise: str | None = None
    why_profile: str | None = None
    variant: str | None = None
    checks: tuple[int, ...] = ()


@dataclass(frozen=True)
class Rules:
    kinds: tuple[str, ...]
    titles: dict[str, str]
    routes: tuple[Route, ...]
    never_causes: dict[str, str]
    never_modes: dict[str, str]
    success_modes: frozenset[str]
    examples: int
    names: dict[str, Any]
    profile_section: str
    versions: dict[str, tuple[str, str]]
    ciphers: dict[str, str]
    hashes: dict[str, str]
    key_exchanges: dict[str, str]
    checks: dict[int, dict[str, str]]
    patterns: dict[str, str]

    def route(self, cause: str | None, mode: str | None) -> Route | None:
        for route in self.routes:
            if route.cause == cause and mode in route.modes:
                return route
        return None

    def exclusion_causes(self) -> list[str]:
        """Causes a route may turn into an exclusion (forward proxy only)."""
        return sorted(
            {r.cause for r in self.routes if "exclusion" in (r.kind, r.otherwise)}
            - set(self.never_causes)
        )


def _fail(path: Path, message: str) -> ConfigError:
    return ConfigError(f"{path}: {message}")


def load_rules(path: Path = DATA_PATH) -> Rules:
    """Read and check ``schemas/recommendations.toml``; a mistake is a ConfigError naming it."""
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise _fail(path, str(exc)) from exc
    if data.get("schema") != 1:
        raise _fail(path, f"unknown schema {data.get('schema')!r}")
    kinds = tuple(data["kinds"])
    titles = dict(data["titles"])
    if set(titles) != set(kinds):
        raise _fail(path, "[titles] must name every kind once")
    checks = {int(c["number"]): dict(c) for c in data["inbound_checks"]}
    routes = []
    for raw in data["routes"]:
        route = Route(
            cause=raw["cause"],
            modes=frozenset(raw["modes"]),
            kind=raw["kind"],
            why=raw["why"],
            parameter=raw.get("parameter"),
            otherwise=raw.get("otherwise"),
            why_profile=raw.get("why_profile"),
            variant=raw.get("variant"),
            checks=tuple(raw.get("checks", ())),
        )
        if route.kind not in kinds or (route.otherwise and route.otherwise not in kinds):
            raise _fail(path, f"route {route.cause}: unknown kind")
        if route.parameter not in (None, "cipher", "version"):
            raise _fail(path, f"route {route.cause}: unknown parameter {route.parameter!r}")
        if route.kind == "inbound" and (not route.checks or set(route.checks) - set(checks)):
            raise _fail(path, f"route {route.cause}: inbound routes name checks 1-{len(checks)}")
        if route.kind == "trust-chain" and route.variant not in (
            "missing-intermediate",
            "untrusted-root",
        ):
            raise _fail(path, f"route {route.cause}: unknown trust-chain variant")
        routes.append(route)
    never_causes: dict[str, str] = {}
    never_modes: dict[str, str] = {}
    for entry in data["never_exclude"]:
        if "cause" in entry:
            never_causes[entry["cause"]] = entry["reason"]
        elif "mode" in entry:
            never_modes[entry["mode"]] = entry["reason"]
        else:
            raise _fail(path, "a [[never_exclude]] entry names a cause or a mode")
    profile = data["profile"]
    names = dict(data["names"])
    if not names["prefix"] or int(names["max_length"]) < len(names["prefix"]) + 8:
        raise _fail(path, "[names] prefix and max_length leave no room for a name")
    return Rules(
        kinds=kinds,
        titles=titles,
        routes=tuple(routes),
        never_causes=never_causes,
        never_modes=never_modes,
        success_modes=frozenset(data["success_modes"]),
        examples=int(data["examples"]),
        names=names,
        profile_section=profile["section"],
        versions={k: (v["setting"], v["value"]) for k, v in profile["versions"].items()},
        ciphers=dict(profile["ciphers"]),
        hashes=dict(profile["hashes"]),
        key_exchanges=dict(profile["key_exchanges"]),
        checks=checks,
        patterns=dict(data["patterns"]),
    )


@cache
def rules() -> Rules:
    return load_rules()


def exclusion_causes() -> list[str]:
    """The causes that can lead to an exclusion (for dashboards and documentation)."""
    return rules().exclusion_causes()


# --- names --------------------------------------------------------------------------------------


def config_name(suffix: str, names: Mapping[str, Any] | None = None) -> str:
    """``<prefix><suffix>`` as a PAN-OS object name: lower case, letters, digits, ``.``, ``_``,
    ``-``; cut to the length limit with a short digest of the full name so that two long names
    stay apart, and the same suffix always gives the same name."""
    names = names if names is not None else rules().names
    prefix, limit = names["prefix"], int(names["max_length"])
    slug = _NAME_CHARS.sub("-", suffix.lower()).strip("-") or "x"
    name = prefix + slug
    if len(name) <= limit:
        return name
    digest = hashlib.blake2b(name.encode(), digest_size=2).hexdigest()
    return name[: limit - len(digest) - 1].rstrip("-._") + "-" + digest


def exclusion_name(decryption_rule: str | None, names: Mapping[str, Any] | None = None) -> str:
    names = names if names is not None else rules().names
    if not decryption_rule:
        return config_name(names["exclusion_any_rule"], names)
    return config_name(f"{names['exclusion']}-{decryption_rule}", names)


# --- one document --------------------------------------------------------------------------------


def _get(doc: Mapping[str, Any], *path: str) -> Any:
    node: Any = doc
    for key in path:
        if not isinstance(node, Mapping):
            return None
        node = node.get(key)
    return node


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _host(value: Any) -> str | None:
    text = _text(value)
    return text.lower().rstrip(".") if text else None


@dataclass(frozen=True, slots=True)
class Fact:
    """What one ECS document says, reduced to what recommendations read."""

    doc_id: str
    time: datetime
    failure: bool
    success: bool
    counted: bool
    cause: str | None
    mode: str | None
    sni: str | None
    cn: str | None
    dst_ip: str | None
    nat_dst_ip: str | None
    src_ip: str | None
    user: str | None
    serial: str | None
    firewall: str | None
    session: str | None
    session_key: str | None
    rule: str | None
    decryption_rule: str | None
    zone_from: str | None
    zone_to: str | None
    version: str | None
    cipher: str | None
    hash: str | None
    key_exchange: str | None
    issuer_cn: str | None
    root_cn: str | None

    @property
    def host(self) -> str | None:
        """The destination's name: the SNI, else the server certificate's CN."""
        return self.sni or self.cn

    @property
    def server(self) -> str | None:
        """The server: its name, else its (translated, for inbound inspection) address."""
        return self.host or self.nat_dst_ip or self.dst_ip


def fact_of(doc_id: str, doc: Mapping[str, Any]) -> Fact | None:
    """The fact of a failure or of a decrypted session; None for any other document."""
    ds = doc.get("decryptscope")
    if not isinstance(ds, Mapping):
        return None
    failure = ds.get("failure") is True
    tls = doc.get("tls") if isinstance(doc.get("tls"), Mapping) else {}
    success = not failure and _get(tls, "established") is True
    if not failure and not success:
        return None
    try:
        when = datetime.fromisoformat(str(doc.get("@timestamp")))
    except ValueError:
        return None
    log_type = _text(_get(doc, "panw", "panos", "type"))
    joined = _get(ds, "correlation", "joined") or ()
    rank = _COUNT_ORDER.index(log_type) if log_type in _COUNT_ORDER else len(_COUNT_ORDER)
    counted = not any(t in joined for t in _COUNT_ORDER[:rank])
    name, domain = _text(_get(doc, "source", "user", "name")), None
    if name:
        domain = _text(_get(doc, "source", "user", "domain"))
    serial = _text(_get(doc, "observer", "serial_number"))
    flow = _get(doc, "panw", "panos", "flow_id")
    protocol, version = _text(_get(tls, "version_protocol")), _text(_get(tls, "version"))
    return Fact(
        doc_id=doc_id,
        time=when,
        failure=failure,
        success=success,
        counted=counted,
        cause=_text(ds.get("cause")),
        mode=_text(ds.get("mode")),
        sni=_host(_get(tls, "client", "server_name")),
        cn=_host(_get(tls, "server", "x509", "subject", "common_name")),
        dst_ip=_text(_get(doc, "destination", "ip")),
        nat_dst_ip=_text(_get(doc, "destination", "nat", "ip")),
        src_ip=_text(_get(doc, "source", "ip")),
        user=f"{domain}\\{name}" if domain else name,
        serial=serial,
        firewall=_text(_get(doc, "observer", "hostname")),
        session=f"{serial or '-'}:{flow}" if flow is not None else None,
        session_key=_text(_get(ds, "correlation", "key")),
        rule=_text(_get(doc, "rule", "name")),
        decryption_rule=_text(_get(doc, "panw", "panos", "policy", "name")),
        zone_from=_text(_get(doc, "observer", "ingress", "zone")),
        zone_to=_text(_get(doc, "observer", "egress", "zone")),
        version=f"{protocol.upper()}{version}" if protocol and version else None,
        cipher=_text(_get(tls, "cipher")),
        hash=_text(_get(doc, "panw", "panos", "tls", "auth")),
        key_exchange=_text(_get(doc, "panw", "panos", "tls", "key_exchange_algorithm")),
        issuer_cn=_text(_get(tls, "server", "x509", "issuer", "common_name")),
        root_cn=_text(_get(doc, "panw", "panos", "root_common_name", "value")),
    )


# --- evidence ------------------------------------------------------------------------------------


def _address_key(text: str) -> tuple[int, Any, str]:
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return (2, 0, text)
    return (address.version - 4, int(address), text)


def _iso(when: datetime) -> str:
    return when.isoformat(timespec="milliseconds")


def _count(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


@dataclass
class Tally:
    """The evidence of one recommendation: the failures behind it."""

    causes: Counter[str] = field(default_factory=Counter)
    clients: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    client_failures: Counter[str] = field(default_factory=Counter)
    users: set[str] = field(default_factory=set)
    first: datetime | None = None
    last: datetime | None = None
    firewalls: set[tuple[str, str]] = field(default_factory=set)
    rules: set[str] = field(default_factory=set)
    decryption_rules: set[str] = field(default_factory=set)
    sessions: set[tuple[datetime, str]] = field(default_factory=set)
    servers: set[str] = field(default_factory=set)
    addresses: set[str] = field(default_factory=set)
    placements: set[tuple[str, str | None, str | None]] = field(default_factory=set)

    @property
    def failures(self) -> int:
        return self.causes.total()

    @property
    def span_s(self) -> float:
        if self.first is None or self.last is None:
            return 0.0
        return (self.last - self.first).total_seconds()

    def add(self, fact: Fact, users: Iterable[str] = ()) -> None:
        self.causes[fact.cause or "unknown"] += 1
        client = fact.src_ip or "-"
        self.client_failures[client] += 1
        mine = self.clients[client]
        for user in (fact.user, *users):
            if user:
                mine.add(user)
                self.users.add(user)
        if self.first is None or fact.time < self.first:
            self.first = fact.time
        if self.last is None or fact.time > self.last:
            self.last = fact.time
        if fact.serial or fact.firewall:
            self.firewalls.add((fact.firewall or "", fact.serial or ""))
        if fact.rule:
            self.rules.add(fact.rule)
        if fact.decryption_rule:
            self.decryption_rules.add(fact.decryption_rule)
        if fact.session:
            self.sessions.add((fact.time, fact.session))
        if fact.server:
            self.servers.add(fact.server)
        for address in (fact.dst_ip, fact.nat_dst_ip):
            if address:
                self.addresses.add(address)
        self.placements.add((fact.decryption_rule or "", fact.zone_from, fact.zone_to))

    def merge(self, other: Tally) -> None:
        self.causes.update(other.causes)
        for client, users in other.clients.items():
            self.clients[client] |= users
        self.client_failures.update(other.client_failures)
        self.users |= other.users
        for when in (other.first, other.last):
            if when is not None:
                self.first = when if self.first is None else min(self.first, when)
                self.last = when if self.last is None else max(self.last, when)
        self.firewalls |= other.firewalls
        self.rules |= other.rules
        self.decryption_rules |= other.decryption_rules
        self.sessions |= other.sessions
        self.servers |= other.servers
        self.addresses |= other.addresses
        self.placements |= other.placements

    def client_list(self) -> list[str]:
        return sorted((c for c in self.clients if c != "-"), key=_address_key)

    def evidence(self, examples: int) -> dict[str, Any]:
        clients = self.client_list()
        sessions = sorted(self.sessions, key=lambda s: (s[0], s[1]))
        return {
            "causes": dict(sorted(self.causes.items(), key=lambda kv: (-kv[1], kv[0]))),
            "failures": self.failures,
            "clients": len(clients),
            "client_addresses": clients[:LIST_LIMIT],
            "users": sorted(self.users)[:LIST_LIMIT],
            "first_seen": _iso(self.first) if self.first else None,
            "last_seen": _iso(self.last) if self.last else None,
            "span_s": self.span_s,
            "firewalls": [
                f"{name} ({serial})" if name and serial else name or serial
                for name, serial in sorted(self.firewalls)
            ],
            "rules": sorted(self.rules),
            "decryption_rules": sorted(self.decryption_rules),
            "sessions": [s for _, s in sessions[:examples]],
        }

    def review_by(self, days: int) -> str | None:
        if self.last is None:
            return None
        return (self.last.date() + timedelta(days=days)).isoformat()


def _duration(seconds: float) -> str:
    minutes = int(seconds // 60)
    if minutes >= 60:
        return f"{minutes // 60} h {minutes % 60:02d} min"
    if minutes:
        return f"{minutes} min"
    return f"{int(seconds)} s"


def _parent(host: str) -> str | None:
    """The domain one label up, when the evidence may span its subdomains: never a public
    suffix (``*.co.uk``), never for an address or a name that is a wildcard already."""
    if host.startswith("*") or _is_address(host) or host.count(".") < 2:
        return None
    parent = host.split(".", 1)[1]
    return parent if _public_suffixes().privatesuffix(parent) is not None else None


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


@cache
def _public_suffixes() -> Any:
    from publicsuffixlist import PublicSuffixList  # the list it ships, no download

    return PublicSuffixList()


# --- the recommendations ------------------------------------------------------------------------


class Evidence:
    """Collects ECS documents (``add``); ``recommend()`` turns them into recommendations."""

    def __init__(self, data: Rules | None = None) -> None:
        self.rules = data or rules()
        self.facts: dict[str, Fact] = {}

    def add(self, doc_id: str, doc: Mapping[str, Any]) -> None:
        """A document; a later version of the same id replaces the earlier one."""
        fact = fact_of(doc_id, doc)
        if fact is not None:
            self.facts[doc_id] = fact
        else:
            self.facts.pop(doc_id, None)

    def extend(self, pairs: Iterable[tuple[str, Mapping[str, Any]]]) -> Evidence:
        for doc_id, doc in pairs:
            self.add(doc_id, doc)
        return self

    def recommend(self, gates: Gates | None = None) -> dict[str, Any]:
        return _Builder(self.rules, gates or Gates(), list(self.facts.values())).build()


def recommend(
    pairs: Iterable[tuple[str, Mapping[str, Any]]], gates: Gates | None = None
) -> dict[str, Any]:
    """The recommendations of ``(document id, ECS document)`` pairs."""
    return Evidence().extend(pairs).recommend(gates)


class _Builder:
    def __init__(self, data: Rules, gates: Gates, facts: list[Fact]) -> None:
        self.rules = data
        self.gates = gates
        self.facts = sorted(facts, key=lambda f: (f.time, f.doc_id))
        self.session_users: dict[str, set[str]] = defaultdict(set)
        self.successes: Counter[str] = Counter()
        self.exclusion: dict[str, Tally] = defaultdict(Tally)
        self.never: dict[str, dict[str, Tally]] = defaultdict(lambda: defaultdict(Tally))
        self.nameless: dict[str, Tally] = defaultdict(Tally)
        self.trust: dict[tuple[str, str], Tally] = defaultdict(Tally)
        self.ca: dict[str, Tally] = defaultdict(Tally)
        self.profile: dict[str, dict[tuple[str, str], Tally]] = defaultdict(
            lambda: defaultdict(Tally)
        )
        self.profile_rules: dict[str, Tally] = defaultdict(Tally)
        self.inbound: dict[str, Tally] = defaultdict(Tally)
        self.inbound_checks: dict[str, Counter[int]] = defaultdict(Counter)
        self.whys: dict[tuple[str, str], str] = {}

    # -- routing ------------------------------------------------------------------------------

    def _profile_settings(self, route: Route, fact: Fact) -> list[tuple[str, str]] | None:
        """The profile settings that lift the limit, or None when the profile cannot."""
        data = self.rules
        if route.parameter == "version":
            setting = data.versions.get(fact.version or "")
            return [setting] if setting else None
        parts = (
            (data.ciphers, fact.cipher),
            (data.hashes, fact.hash),
            (data.key_exchanges, fact.key_exchange),
        )
        out = []
        for table, value in parts:
            name = table.get(value or "")
            if name is None:
                return None
            out.append((name, "yes"))
        return out

    def _route(self, fact: Fact) -> None:
        data = self.rules
        route = data.route(fact.cause, fact.mode)
        if fact.cause in data.never_causes:
            self.never[fact.host or fact.server or "-"][fact.cause].add(fact)
        if route is None:
            return
        kind = route.kind
        why = route.why
        settings = None
        if route.parameter:
            settings = self._profile_settings(route, fact)
            if settings is None:
                kind = route.otherwise or kind
            else:
                why = route.why_profile or why
        if kind == "exclusion":
            if fact.cause in data.never_causes or fact.mode in data.never_modes:
                return  # never_exclude wins over any route
            self.whys[("exclusion", fact.cause or "")] = why
            users = self.session_users.get(fact.session_key or "", ())
            if fact.host and not fact.host.startswith("*"):
                self.exclusion[fact.host].add(fact, users)
            else:
                self.nameless[fact.dst_ip or "-"].add(fact, users)
        elif kind == "trust-chain":
            ca = fact.issuer_cn if route.variant == "missing-intermediate" else fact.root_cn
            key = (route.variant or "", ca or "")
            self.trust[key].add(fact)
            self.whys[("trust-chain", fact.cause or "")] = why
        elif kind == "forward-trust-ca":
            users = self.session_users.get(fact.session_key or "", ())
            self.ca[fact.serial or fact.firewall or "-"].add(fact, users)
            self.whys[("forward-trust-ca", fact.cause or "")] = why
        elif kind == "profile" and settings:
            rule = fact.decryption_rule or ""
            self.profile_rules[rule].add(fact)
            for setting in settings:
                self.profile[rule][setting].add(fact)
            self.whys[("profile", fact.cause or "")] = why
        elif kind == "inbound":
            server = fact.server or "-"
            self.inbound[server].add(fact)
            self.inbound_checks[server].update(dict.fromkeys(route.checks, 1))
            self.whys[("inbound", fact.cause or "")] = why

    # -- build --------------------------------------------------------------------------------

    def build(self) -> dict[str, Any]:
        failures = 0
        first: datetime | None = None
        last: datetime | None = None
        for fact in self.facts:
            first = fact.time if first is None else min(first, fact.time)
            last = fact.time if last is None else max(last, fact.time)
            if fact.failure and not fact.counted and fact.session_key and fact.user:
                self.session_users[fact.session_key].add(fact.user)
            if fact.success and fact.mode in self.rules.success_modes and fact.host:
                self.successes[fact.host] += 1
        for fact in self.facts:
            if fact.failure and fact.counted:
                failures += 1
                self._route(fact)
        recs: list[dict[str, Any]] = []
        held: list[dict[str, Any]] = []
        recs += self._exclusions(held)
        recs += self._trust_chain()
        recs += self._forward_trust_ca()
        recs += self._profiles()
        recs += self._inbound()
        order = {kind: i for i, kind in enumerate(self.rules.kinds)}
        recs.sort(key=lambda r: (order[r["kind"]], r["subject"], r["id"]))
        return {
            "gates": self.gates.as_dict(),
            "evidence": {
                "failures": failures,
                "decrypted": sum(self.successes.values()),
                "first_seen": _iso(first) if first else None,
                "last_seen": _iso(last) if last else None,
            },
            "recommendations": recs,
            "held": sorted(held, key=lambda h: h["subject"]),
            "declined": self._declined(),
        }

    def _base(self, kind: str, subject: str, tally: Tally, key: str | None = None) -> dict:
        return {
            "kind": kind,
            "id": f"{kind}:{key or subject}",
            "title": self.rules.titles[kind],
            "subject": subject,
            "evidence": tally.evidence(self.rules.examples),
            "review_by": tally.review_by(self.gates.review_days),
        }

    def _why(self, kind: str, tally: Tally) -> list[dict[str, Any]]:
        return [
            {"cause": cause, "failures": n, "text": self.whys.get((kind, cause), "")}
            for cause, n in sorted(tally.causes.items(), key=lambda kv: (-kv[1], kv[0]))
        ]

    def _short_of_gates(self, host: str, tally: Tally) -> list[str]:
        gates = self.gates
        out = []
        if tally.failures < gates.min_failures:
            out.append(f"{_count(tally.failures, 'failure')} (gate {gates.min_failures})")
        clients = len(tally.client_list())
        if clients < gates.min_clients:
            out.append(f"{_count(clients, 'distinct client')} (gate {gates.min_clients})")
        if tally.span_s < gates.min_span_s:
            out.append(f"seen over {_duration(tally.span_s)} (gate {_duration(gates.min_span_s)})")
        if self.successes[host]:
            out.append(
                f"{_count(self.successes[host], 'decrypted session')} to it in the window: it "
                "can be decrypted, so the failures come from some clients or applications"
            )
        for cause, never in sorted(self.never.get(host, {}).items()):
            reason = self.rules.never_causes[cause]
            out.append(f"{_count(never.failures, cause + ' failure')} to it: {reason}")
        return out

    def _exclusions(self, held: list[dict[str, Any]]) -> list[dict[str, Any]]:
        passed: dict[str, Tally] = {}
        for host, tally in self.exclusion.items():
            reasons = self._short_of_gates(host, tally)
            if reasons:
                held.append(
                    {
                        "subject": host,
                        "causes": dict(sorted(tally.causes.items())),
                        "failures": tally.failures,
                        "clients": len(tally.client_list()),
                        "span_s": tally.span_s,
                        "first_seen": _iso(tally.first) if tally.first else None,
                        "last_seen": _iso(tally.last) if tally.last else None,
                        "reasons": reasons,
                    }
                )
            else:
                passed[host] = tally
        # Wildcards only where the evidence spans subdomains: two or more names one label
        # under the same domain each pass the gates, and no decrypted session went to another
        # name the wildcard would cover.
        by_parent: dict[str, list[str]] = defaultdict(list)
        for host in passed:
            parent = _parent(host)
            if parent:
                by_parent[parent].append(host)
        groups: list[tuple[str, list[str], str | None]] = []
        grouped: set[str] = set()
        for parent, hosts in by_parent.items():
            decrypted = any(_parent(h) == parent for h in self.successes if h not in hosts)
            if len(hosts) >= 2 and not decrypted:
                groups.append((f"*.{parent}", sorted(hosts), parent))
                grouped.update(hosts)
        groups += [(host, [host], None) for host in passed if host not in grouped]
        wildcards = {parent for _, _, parent in groups if parent}
        for entry in held:
            parent = _parent(entry["subject"])
            if parent in wildcards:
                entry["reasons"].append(
                    f"the wildcard *.{parent} recommended for its sibling names covers it too"
                )
        patterns = self.rules.patterns
        out = []
        for subject, hosts, parent in groups:
            tally = Tally()
            for host in hosts:
                tally.merge(passed[host])
            if parent:
                url = [patterns["url_one_label"].format(parent=parent)]
                exclude = [patterns["exclude_one_label"].format(parent=parent)]
            else:
                url = [patterns["url_host"].format(host=subject)]
                exclude = [patterns["exclude_host"].format(host=subject)]
            placements: dict[str, dict[str, set[str]]] = defaultdict(
                lambda: {"from": set(), "to": set()}
            )
            for rule, zone_from, zone_to in tally.placements:
                slot = placements[rule]
                if zone_from:
                    slot["from"].add(zone_from)
                if zone_to:
                    slot["to"].add(zone_to)
            rec = self._base("exclusion", subject, tally)
            rec.update(
                {
                    "hosts": hosts,
                    "url_entries": url,
                    "exclude_entries": exclude,
                    "placements": [
                        {
                            "before": rule or None,
                            "name": exclusion_name(rule or None, self.rules.names),
                            "from": sorted(slot["from"]) or ["any"],
                            "to": sorted(slot["to"]) or ["any"],
                        }
                        for rule, slot in sorted(placements.items())
                    ],
                    "why": self._why("exclusion", tally),
                }
            )
            out.append(rec)
        return out

    def _trust_chain(self) -> list[dict[str, Any]]:
        out = []
        for (variant, ca), tally in self.trust.items():
            subject = ca or "(no CA name in the logs)"
            rec = self._base("trust-chain", subject, tally, f"{variant}:{subject}")
            rec.update(
                {
                    "variant": variant,
                    "ca": ca or None,
                    "certificate_name": config_name(ca, self.rules.names) if ca else None,
                    "servers": sorted(tally.servers, key=_address_key),
                    "why": self._why("trust-chain", tally),
                }
            )
            out.append(rec)
        return out

    def _forward_trust_ca(self) -> list[dict[str, Any]]:
        out = []
        for key, tally in self.ca.items():
            name, serial = sorted(tally.firewalls)[0] if tally.firewalls else ("", key)
            subject = f"{name} ({serial})" if name and serial else name or serial or key
            rec = self._base("forward-trust-ca", subject, tally, serial or key)
            clients = tally.client_list()
            rec.update(
                {
                    "firewall": {"serial": serial or None, "name": name or None},
                    "client_count": len(clients),
                    "clients": [
                        {
                            "address": c,
                            "users": sorted(tally.clients[c]),
                            "failures": tally.client_failures[c],
                        }
                        for c in clients
                    ],
                    "why": self._why("forward-trust-ca", tally),
                }
            )
            out.append(rec)
        return out

    def _profiles(self) -> list[dict[str, Any]]:
        out = []
        for rule, tally in self.profile_rules.items():
            settings = self.profile[rule]
            subject = rule or "(no decryption rule in the logs)"
            rec = self._base("profile", subject, tally)
            rec.update(
                {
                    "decryption_rule": rule or None,
                    "section": self.rules.profile_section,
                    "settings": [
                        {
                            "setting": name,
                            "value": value,
                            "failures": t.failures,
                            "servers": sorted(t.servers, key=_address_key),
                        }
                        for (name, value), t in sorted(settings.items())
                    ],
                    "why": self._why("profile", tally),
                }
            )
            out.append(rec)
        return out

    def _inbound(self) -> list[dict[str, Any]]:
        out = []
        for server, tally in self.inbound.items():
            rec = self._base("inbound", server, tally)
            counts = self.inbound_checks[server]
            rec.update(
                {
                    "server": server,
                    "addresses": sorted(tally.addresses, key=_address_key),
                    "checks": [
                        {
                            "number": number,
                            "kb": self.rules.checks[number]["kb"],
                            "server_change": self.rules.checks[number]["server_change"],
                            "failures": counts[number],
                        }
                        for number in sorted(counts)
                    ],
                    "why": self._why("inbound", tally),
                    "not_excluded": self.rules.never_modes.get("inbound-inspection"),
                }
            )
            out.append(rec)
        return out

    def _declined(self) -> list[dict[str, Any]]:
        out = []
        for subject, causes in self.never.items():
            for cause, tally in causes.items():
                out.append(
                    {
                        "subject": subject,
                        "cause": cause,
                        "failures": tally.failures,
                        "reason": self.rules.never_causes[cause],
                    }
                )
        for address, tally in self.nameless.items():
            for cause, n in tally.causes.items():
                out.append(
                    {
                        "subject": address,
                        "cause": cause,
                        "failures": n,
                        "reason": "No server name: neither an SNI nor a certificate CN that "
                        "names one host was logged, and exclusions match host names.",
                    }
                )
        return sorted(out, key=lambda d: (d["subject"], d["cause"]))
