"""Convert the Sigma rules in deploy/sigma/rules/ with pySigma's backends.

Writes, beside this file:
  elasticsearch/<rule>.lucene  Lucene query of each detection rule (LuceneBackend; Lucene has no
                               correlations)
  elasticsearch/<rule>.esql    ES|QL of every rule, correlations included (ESQLBackend)
  splunk/<rule>.spl            SPL of every rule, correlations included (SplunkBackend)
all through the processing pipeline processing-pipeline.yml. Run ``python deploy/sigma/convert.py``
after changing a rule and commit what it writes; ``--check`` only compares (exit 1 on a
difference), which the tests do.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import yaml
from sigma.backends.elasticsearch import ESQLBackend, LuceneBackend
from sigma.backends.splunk import SplunkBackend
from sigma.collection import SigmaCollection
from sigma.conversion.base import Backend
from sigma.processing.pipeline import ProcessingPipeline
from sigma.rule import SigmaRule

HERE = Path(__file__).resolve().parent
RULES = HERE / "rules"
PIPELINE = HERE / "processing-pipeline.yml"
# (directory, suffix, backend, whether it converts correlation rules)
TARGETS: tuple[tuple[str, str, Callable[[ProcessingPipeline], Backend], bool], ...] = (
    ("elasticsearch", "lucene", LuceneBackend, False),
    ("elasticsearch", "esql", ESQLBackend, True),
    ("splunk", "spl", SplunkBackend, True),
)


def is_correlation(path: Path) -> bool:
    return "correlation" in yaml.safe_load(path.read_text(encoding="utf-8"))


def rule_files() -> list[Path]:
    """The rule files, detection rules before the correlations that name them."""
    return sorted(sorted(RULES.glob("*.yml")), key=is_correlation)


def load(paths: list[Path]) -> SigmaCollection:
    """A fresh collection of these rule files. A pipeline changes the rules it converts, so
    each conversion needs its own; a detection rule is converted alone, because pySigma leaves
    the rules a correlation names in the same collection unfinished (no index, no fields)."""
    texts = [p.read_text(encoding="utf-8") for p in paths]
    rules = SigmaCollection.from_yaml("\n---\n".join(texts))
    if rules.errors:
        raise SystemExit(f"invalid Sigma rules: {rules.errors}")
    return rules


def processing_pipeline() -> ProcessingPipeline:
    return ProcessingPipeline.from_yaml(PIPELINE.read_text(encoding="utf-8"))


def render() -> dict[Path, str]:
    """Relative output path -> its text."""
    out: dict[Path, str] = {}
    files = rule_files()
    for directory, suffix, make_backend, correlations in TARGETS:
        for index, path in enumerate(files):
            backend = make_backend(processing_pipeline())
            if not is_correlation(path):
                queries = backend.convert_rule(load([path])[0])
            elif correlations:
                # pySigma builds a correlation from the conversions of the rules it names
                rules = load(files)
                for rule in rules:
                    if isinstance(rule, SigmaRule):
                        backend.convert_rule(rule)
                queries = backend.convert_correlation_rule(rules[index])
            else:
                continue
            text = "\n".join(str(q) for q in queries)
            out[Path(directory) / f"{path.stem}.{suffix}"] = text + "\n"
    return out


def main(argv: list[str]) -> int:
    check = "--check" in argv
    wanted = render()
    present = {
        p.relative_to(HERE)
        for directory in {t[0] for t in TARGETS}
        for p in (HERE / directory).glob("*")
        if p.is_file()
    }
    stale = sorted(present - set(wanted))
    changed = sorted(
        path
        for path, text in wanted.items()
        if not (HERE / path).exists() or (HERE / path).read_text(encoding="utf-8") != text
    )
    if check:
        for path in changed:
            print(f"out of date: deploy/sigma/{path}", file=sys.stderr)
        for path in stale:
            print(f"no rule any more: deploy/sigma/{path}", file=sys.stderr)
        return 1 if changed or stale else 0
    for path in stale:
        (HERE / path).unlink()
    for path in changed:
        (HERE / path).parent.mkdir(parents=True, exist_ok=True)
        (HERE / path).write_text(wanted[path], encoding="utf-8")
    print(f"{len(wanted)} conversions, {len(changed)} written, {len(stale)} removed")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
