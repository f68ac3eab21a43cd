"""The map of rooms holds: a module imports only from its own layer or the layers below it, and
the pure core (parsing, diagnosis, correlation, ECS/OCSF, alerting statistics, the chain, the
report) never imports Kafka, Faust, Elasticsearch or Prometheus. The same map is drawn in the
README's architecture section."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "pipeline"

# Bottom to top. A module belongs to the first entry whose prefix it has.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("base", ("pipeline.settings", "pipeline.errors", "pipeline.resources", "pipeline.metrics")),
    ("wire", ("pipeline.wire",)),
    (
        "core",
        (
            "pipeline.panos",
            "pipeline.syslog.framing",
            "pipeline.syslog.octets",
            "pipeline.diagnosis",
            "pipeline.community_id",
            "pipeline.ecs",
            "pipeline.ecs_logtypes",
            "pipeline.ocsf",
            "pipeline.correlate",
            "pipeline.alerting",
            "pipeline.recommend",
            "pipeline.changes",
            "pipeline.coverage",
            "pipeline.certificates",
            "pipeline.regression",
        ),
    ),
    ("chain", ("pipeline.chain",)),
    ("report", ("pipeline.report",)),
    ("clients", ("pipeline.kafka_config", "pipeline.sinks", "pipeline.stack")),
    ("services", ("pipeline.syslog", "pipeline.ingest", "pipeline.stream")),
    ("commands", ("pipeline.commands",)),
    ("cli", ("pipeline.cli", "pipeline.__main__")),
]
PURE = {"wire", "core", "chain", "report"}
IMPURE_LIBRARIES = (
    "kafka",
    "aiokafka",
    "faust",
    "mode",
    "elasticsearch",
    "elastic_transport",
    "prometheus_client",
)


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(module: str) -> int | None:
    if module == "pipeline":
        return 0  # the package's own __init__ (version) sits at the bottom
    for rank, (_name, prefixes) in enumerate(LAYERS):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return rank
    return None


def imports(path: Path) -> list[tuple[int, str]]:
    """(line, imported module) of every import, at any depth, resolved to full names."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            base = node.module
            if node.level:
                package = module_name(path).rsplit(".", node.level)[0]
                base = f"{package}.{node.module}"
            if base == "pipeline" or base.startswith("pipeline."):
                # "from pipeline import x": x may be a module
                out.extend((node.lineno, f"{base}.{alias.name}") for alias in node.names)
            else:
                out.append((node.lineno, base))
    return out


MODULES = sorted(PACKAGE.rglob("*.py"))


def test_every_module_has_a_room() -> None:
    unplaced = [module_name(p) for p in MODULES if layer_of(module_name(p)) is None]
    assert not unplaced, f"modules missing from the map: {unplaced}"


def violations(me: str, found: list[tuple[int, str]]) -> list[str]:
    """What breaks the map among the imports ``found`` in module ``me``."""
    mine = layer_of(me)
    assert mine is not None
    pure = LAYERS[mine][0] in PURE
    out = []
    for line, target in found:
        if not target.startswith("pipeline"):
            if pure and target.split(".")[0] in IMPURE_LIBRARIES:
                out.append(f"{me}:{line} imports {target} (a pure room)")
            continue
        # "from pipeline.x import name": the module is the longest placed prefix
        parts = target.split(".")
        rank = None
        while parts and rank is None:
            rank = layer_of(".".join(parts))
            parts = parts[:-1]
        if rank is None:
            out.append(f"{me}:{line} imports {target}, which has no room")
        elif rank > mine:
            out.append(f"{me}:{line} imports {target} ({LAYERS[rank][0]} > {LAYERS[mine][0]})")
        elif pure and target.startswith("pipeline.metrics"):
            out.append(f"{me}:{line} imports the metrics (Prometheus) from a pure room")
    return out


@pytest.mark.parametrize("path", MODULES, ids=[module_name(p) for p in MODULES])
def test_imports_point_down_and_the_core_stays_pure(path: Path) -> None:
    assert violations(module_name(path), imports(path)) == []


def test_the_check_sees_a_violation() -> None:
    # The rule is not vacuous: an upward import, Kafka and the metrics in a core module fail.
    found = [(1, "pipeline.stream.app"), (2, "kafka.admin"), (3, "pipeline.metrics.METRICS")]
    assert len(violations("pipeline.panos.line", found)) == 3
    assert violations("pipeline.stream.worker", found) == []
