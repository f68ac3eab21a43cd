"""Load and validate the cause catalogue (``schemas/causes.toml``) into compiled rules.

Everything that can be wrong in the catalogue is found here, at load, and reported as a
``ConfigError`` naming the file, the line and the cause: an unknown category or mode, a
duplicate id, a rule on a field no record has, a bad regex, a confidence outside 0-1, a level
missing from the precedence table, a named condition that does not exist. Record fields are
checked against the column layouts in ``schemas/panos/`` plus the keys of ``show session id``
records.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from pipeline import resources
from pipeline.diagnosis.rules import Rule, compile_condition, gate_of
from pipeline.errors import ConfigError
from pipeline.panos.layouts import record_keys

DEFAULT_PATH = resources.SCHEMAS / "causes.toml"

# The parser's meta keys: on every record, in no column layout.
META_KEYS = frozenset(
    {"_format", "_layout", "_host", "_syslog_time", "_truncated", "_extra", "_original"}
)


@dataclass(frozen=True, slots=True)
class Cause:
    id: str
    category: str
    title: str
    mode: str | None  # the mode to assume when no mode rule decides
    remediation: str
    references: tuple[str, ...]
    line: int


@dataclass(frozen=True, slots=True)
class Catalogue:
    path: Path
    causes: Mapping[str, Cause]
    rules: tuple[Rule, ...]  # cause rules, best first: precedence, specificity, confidence
    mode_rules: tuple[Rule, ...]  # in catalogue order; the first that matches decides
    mode_events: tuple[Rule, ...]  # records that carry a mode although they are no failure
    gates: tuple[tuple[str, str | None], ...]  # (field, source) pairs the cause rules gate on
    default_mode: str
    categories: tuple[str, ...]
    modes: tuple[str, ...]
    precedence: Mapping[str, int]

    def labels(self) -> list[tuple[str, str]]:
        """(cause id, category) of every cause: the failure metrics' label sets."""
        return [(cause.id, cause.category) for cause in self.causes.values()]


def layout_fields() -> frozenset[str]:
    """Record keys a rule may name: those of the column layouts (``pipeline.panos``) and the
    parser's meta keys."""
    return record_keys() | META_KEYS


class _Lines:
    """Line numbers of the catalogue's ``[[causes]]``/``[[causes.rules]]``/``[[mode_rules]]``/
    ``[[mode_events]]`` headers and of each cause's ``id``, so errors can point into the file."""

    _HEADER = re.compile(r"^\s*\[\[\s*([\w.]+)\s*\]\]")
    _ID = re.compile(r"""^\s*id\s*=\s*["']([^"']*)["']""")

    def __init__(self, text: str) -> None:
        self.cause_lines: list[int] = []
        self.rule_lines: list[list[int]] = []
        self.mode_rule_lines: list[int] = []
        self.mode_event_lines: list[int] = []
        self.id_lines: dict[int, int] = {}
        section = ""
        for number, line in enumerate(text.splitlines(), start=1):
            header = self._HEADER.match(line)
            if header:
                section = header.group(1)
                if section == "causes":
                    self.cause_lines.append(number)
                    self.rule_lines.append([])
                elif section == "causes.rules" and self.rule_lines:
                    self.rule_lines[-1].append(number)
                elif section == "mode_rules":
                    self.mode_rule_lines.append(number)
                elif section == "mode_events":
                    self.mode_event_lines.append(number)
                continue
            if section == "causes" and self._ID.match(line):
                self.id_lines[len(self.cause_lines) - 1] = number

    def cause(self, index: int) -> int:
        return self.id_lines.get(index) or _at(self.cause_lines, index)

    def rule(self, cause_index: int, rule_index: int) -> int:
        if cause_index < len(self.rule_lines):
            lines = self.rule_lines[cause_index]
            if rule_index < len(lines):
                return lines[rule_index]
        return self.cause(cause_index)

    def mode_rule(self, index: int) -> int:
        return _at(self.mode_rule_lines, index)

    def mode_event(self, index: int) -> int:
        return _at(self.mode_event_lines, index)


def _at(lines: list[int], index: int) -> int:
    return lines[index] if index < len(lines) else 0


def load_catalogue(
    path: str | Path | None = None, *, fields: frozenset[str] | None = None
) -> Catalogue:
    """Read, validate and compile a catalogue; ConfigError("<file>:<line>: ...") when wrong."""
    path = Path(path) if path is not None else DEFAULT_PATH
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the cause catalogue: {exc.strerror}") from exc
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    return _build(path, data, _Lines(text), fields if fields is not None else layout_fields())


def _fail(path: Path, line: int, message: str) -> ConfigError:
    return ConfigError(f"{path}:{line}: {message}")


def _str_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) and v for v in value)


def _build(path: Path, data: dict[str, Any], lines: _Lines, fields: frozenset[str]) -> Catalogue:
    categories = data.get("categories")
    modes = data.get("modes")
    precedence = data.get("precedence")
    if not _str_list(categories) or not categories:
        raise _fail(path, 1, "'categories' must be a non-empty list of names")
    if not _str_list(modes) or not modes:
        raise _fail(path, 1, "'modes' must be a non-empty list of names")
    if (
        not isinstance(precedence, dict)
        or not precedence
        or not all(isinstance(v, int) and not isinstance(v, bool) for v in precedence.values())
    ):
        raise _fail(path, 1, "'precedence' must be a table of level = integer rank")
    default_mode = data.get("default_mode", "unknown")
    if default_mode not in modes:
        raise _fail(path, 1, f"default_mode {default_mode!r} is not one of {modes}")
    named = data.get("conditions", {})
    if not isinstance(named, dict) or not all(
        isinstance(v, list) and v and all(isinstance(c, dict) for c in v) for v in named.values()
    ):
        raise _fail(path, 1, "'conditions' must be a table of name = [condition tables]")

    def expand(when: list[Any], line: int, where: str) -> list[Any]:
        """``{ use = "<name>" }`` replaced by the named conditions of ``[conditions]``."""
        out: list[Any] = []
        for cond in when:
            if isinstance(cond, dict) and "use" in cond:
                name = cond["use"]
                if set(cond) != {"use"} or name not in named:
                    raise _fail(
                        path, line, f"{where}: unknown named condition {name!r} ({sorted(named)})"
                    )
                out.extend(named[name])
            else:
                out.append(cond)
        return out

    def rule(spec: Any, target: str, line: int, where: str, *, kind: str) -> Rule:
        if not isinstance(spec, dict):
            raise _fail(path, line, f"{where}: a rule must be a table")
        allowed = {
            "cause": {"level", "confidence", "source", "when", "note"},
            "mode": {"mode", "source", "when", "note"},
            "event": {"source", "when", "note"},
        }[kind]
        extra = set(spec) - allowed
        if extra:
            raise _fail(path, line, f"{where}: unknown rule key(s) {sorted(extra)}")
        level = spec.get("level", "mode")
        rank = 0
        confidence = 1.0
        if kind == "cause":
            if level not in precedence:
                raise _fail(
                    path,
                    line,
                    f"{where}: level {level!r} is not in [precedence] {sorted(precedence)}",
                )
            rank = precedence[level]
            confidence = spec.get("confidence")
            if (
                not isinstance(confidence, int | float)
                or isinstance(confidence, bool)
                or not 0.0 <= confidence <= 1.0
            ):
                raise _fail(path, line, f"{where}: 'confidence' must be a number from 0 to 1")
        when = spec.get("when")
        if not isinstance(when, list) or not when:
            raise _fail(path, line, f"{where}: 'when' must be a non-empty list of conditions")
        when = expand(when, line, where)
        default_source = spec.get("source")
        conditions = []
        for cond in when:
            if not isinstance(cond, dict):
                raise _fail(path, line, f"{where}: each condition must be an inline table")
            try:
                compiled = compile_condition(cond, default_source)
            except re.error as exc:
                raise _fail(path, line, f"{where}: bad regex {cond.get('regex')!r}: {exc}") from exc
            except ValueError as exc:
                raise _fail(path, line, f"{where}: {exc}") from exc
            for name in (compiled.field, *_field_args(compiled.kind, compiled.arg)):
                if name not in fields:
                    raise _fail(path, line, f"{where}: unknown record field {name!r}")
            conditions.append(compiled)
        return Rule(target, level, rank, float(confidence), tuple(conditions), line)

    mode_rules = []
    for index, spec in enumerate(data.get("mode_rules", [])):
        line = lines.mode_rule(index)
        mode = spec.get("mode") if isinstance(spec, dict) else None
        if mode not in modes:
            raise _fail(path, line, f"mode rule {index + 1}: mode {mode!r} is not one of {modes}")
        mode_rules.append(rule(spec, mode, line, f"mode rule {index + 1} ({mode})", kind="mode"))
    mode_events = [
        rule(spec, "event", lines.mode_event(index), f"mode event {index + 1}", kind="event")
        for index, spec in enumerate(data.get("mode_events", []))
    ]

    causes: dict[str, Cause] = {}
    cause_rules: list[tuple[Rule, int]] = []
    raw_causes = data.get("causes")
    if not isinstance(raw_causes, list) or not raw_causes:
        raise _fail(path, 1, "no [[causes]]")
    for index, spec in enumerate(raw_causes):
        line = lines.cause(index)
        cid = spec.get("id")
        if not isinstance(cid, str) or not re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", cid):
            raise _fail(path, line, f"cause {index + 1}: 'id' must be a lower-case-dashed name")
        where = f"cause {cid!r}"
        if cid in causes:
            raise _fail(path, line, f"{where}: duplicate id (first at line {causes[cid].line})")
        extra = set(spec) - {
            "id",
            "category",
            "title",
            "mode",
            "remediation",
            "references",
            "rules",
        }
        if extra:
            raise _fail(path, line, f"{where}: unknown key(s) {sorted(extra)}")
        category = spec.get("category")
        if category not in categories:
            raise _fail(path, line, f"{where}: unknown category {category!r} (known: {categories})")
        mode = spec.get("mode")
        if mode is not None and mode not in modes:
            raise _fail(path, line, f"{where}: unknown mode {mode!r} (known: {modes})")
        for key in ("title", "remediation"):
            if not isinstance(spec.get(key), str) or not spec[key].strip():
                raise _fail(path, line, f"{where}: {key!r} must be non-empty text")
        refs = spec.get("references")
        if not _str_list(refs) or not refs:
            raise _fail(path, line, f"{where}: 'references' must list at least one KB/docs URL")
        raw_rules = spec.get("rules")
        if not isinstance(raw_rules, list) or not raw_rules:
            raise _fail(path, line, f"{where}: no [[causes.rules]]")
        causes[cid] = Cause(
            cid,
            category,
            spec["title"].strip(),
            mode,
            _dedent(spec["remediation"]),
            tuple(refs),
            line,
        )
        for r_index, r_spec in enumerate(raw_rules):
            r_line = lines.rule(index, r_index)
            compiled = rule(r_spec, cid, r_line, f"{where} rule {r_index + 1}", kind="cause")
            cause_rules.append((compiled, len(cause_rules)))

    # Best first: precedence of the evidence level, then specificity (more conditions), then
    # confidence; catalogue order breaks ties so the file reads as the decision order.
    cause_rules.sort(key=lambda ri: (-ri[0].rank, -len(ri[0].conditions), -ri[0].confidence, ri[1]))
    gates: dict[tuple[str, str | None], int] = {}
    rules = []
    for compiled, _ in cause_rules:
        gate = gate_of(compiled)
        gated = (
            compiled if gate is None else replace(compiled, gate=gates.setdefault(gate, len(gates)))
        )
        rules.append(gated)
    return Catalogue(
        path=path,
        causes=causes,
        rules=tuple(rules),
        mode_rules=tuple(mode_rules),
        mode_events=tuple(mode_events),
        gates=tuple(gates),
        default_mode=default_mode,
        categories=tuple(categories),
        modes=tuple(modes),
        precedence=dict(precedence),
    )


def _field_args(kind: str, arg: Any) -> tuple[str, ...]:
    return (arg,) if kind in ("before_field", "after_field") else ()


_ITEM = re.compile(r"^(\d+\.|[-*])\s")


def _dedent(text: str) -> str:
    """Unwrap the catalogue's hard-wrapped prose: paragraphs and list items become one line
    each, so renderers can wrap to their own width."""
    out: list[str] = []
    for raw in text.strip().splitlines():
        line = raw.strip()
        if not line:
            if out and out[-1]:
                out.append("")
        elif out and out[-1] and not _ITEM.match(line):
            out[-1] = f"{out[-1]} {line}"
        else:
            out.append(line)
    return "\n".join(out)
