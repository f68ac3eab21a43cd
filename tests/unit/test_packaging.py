"""The wheel carries what the program reads at run time, and an installed copy reads it from
inside itself, never from a checkout.

The wheel is built offline from this checkout (`python -m build --wheel --no-isolation`, the
backend from the dev extras); `.ci/wheel-check` does the full build from the sdist, installs
it into a fresh venv and runs the commands against the stack."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

from pipeline.resources import ROOT
from pipeline.stack import es_plugin

# What the program reads at run time, as kept in the source tree, and who reads it:
RUNTIME = (
    # panos/layouts.py, diagnosis/catalogue.py, sinks/es_templates.py, metrics.py, changes.py,
    # coverage.py
    "schemas",
    # stack/components.py (Kafka and Elasticsearch configs), stack/fetch.py (pom.xml),
    # stack/es_plugin.py (the plugin source it compiles)
    "deploy/local",
    # stack/components.py: the Prometheus config, its rules, the Alertmanager config
    "deploy/prometheus/prometheus.yml",
    "deploy/prometheus/rules",
    "deploy/alertmanager/alertmanager.yml",
    # commands/demo.py: the demo traffic
    "deploy/demo/sample-traffic.log",
)
DATA = "pipeline/_data/"


def tracked(*paths: str) -> set[str]:
    """Files git tracks under ``paths`` (the source of truth, not the build's selection)."""
    done = subprocess.run(
        ["git", "-C", str(ROOT), "ls-files", "--", *paths],
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    return set(done.stdout.split())


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    done = subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(out),
         str(ROOT)],
        capture_output=True, text=True, check=False, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "deprecat" not in (done.stdout + done.stderr).lower(), done.stdout + done.stderr
    (path,) = out.glob("decryptscope-*.whl")
    return path


@pytest.fixture(scope="module")
def names(wheel: Path) -> set[str]:
    with zipfile.ZipFile(wheel) as archive:
        return set(archive.namelist())


def test_every_runtime_data_file_is_in_the_wheel(names):
    wanted = tracked(*RUNTIME)
    assert len(wanted) >= 50  # layouts, causes, ECS templates, stack configs, plugin, demo
    assert {DATA + name for name in wanted} <= names
    assert {name[len(DATA) :] for name in names if name.startswith(DATA)} == wanted


def test_the_whole_package_and_its_assets_are_in_the_wheel(names):
    package = tracked("pipeline")
    assert "pipeline/report/template.html" in package
    assert package <= names


def test_nothing_lands_outside_the_package(names):
    """Top-level schemas/ or deploy/ in site-packages would be found by nobody."""
    outside = {n for n in names if not n.startswith(("pipeline/", "decryptscope-"))}
    assert outside == set()
    assert not {n for n in names if "/deploy/docker-compose" in n or "/__pycache__/" in n}


def test_license_metadata_is_the_spdx_expression_with_its_file(wheel, names):
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    with zipfile.ZipFile(wheel) as archive:
        metadata = next(archive.read(n) for n in names if n.endswith(".dist-info/METADATA"))
    headers = metadata.decode().split("\n\n", 1)[0].splitlines()
    assert "License-Expression: Apache-2.0" in headers
    assert "License-File: LICENSE" in headers


# Runs in a separate interpreter whose path holds the unpacked wheel and not the checkout.
PROBE = """
import json, sys
from pathlib import Path
sys.path.insert(0, sys.argv[1])
import pipeline
from pipeline import resources
from pipeline.commands import demo
from pipeline.diagnosis.catalogue import load_catalogue
from pipeline.panos.layouts import layouts
from pipeline.report.html import REPORT_TEMPLATE
from pipeline.settings import Settings
from pipeline.sinks import es_templates
from pipeline.stack import components, es_plugin
out = Path(sys.argv[2])
prometheus = components.write_prometheus_config(Settings(), out / "prometheus")
print(json.dumps({
    "package": pipeline.__file__,
    "paths": [str(p) for p in (resources.SCHEMAS, resources.DEPLOY, REPORT_TEMPLATE,
              demo.SAMPLE, es_plugin.SOURCE, resources.DEPLOY / "local" / "pom.xml")],
    "layouts": sorted(layouts()),
    "causes": sorted(load_catalogue().causes),
    "components": sorted(es_templates.desired_templates("p").components),
    "plugin_digest": es_plugin.source_digest(es_plugin.SOURCE, "9.5.4"),
    "rules": sorted(p.name for p in (prometheus.parent / "rules").iterdir()),
    "alertmanager": components.write_alertmanager_config(out / "am").read_text(),
    "report_template": REPORT_TEMPLATE.read_text(encoding="utf-8"),
}))
"""


def test_an_installed_copy_reads_its_data_from_inside_itself(wheel, tmp_path):
    site = tmp_path / "site-packages"
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(site)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(site), str(tmp_path / "out")],
        cwd=tmp_path, env=env, capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)

    assert Path(seen["package"]).is_relative_to(site)
    for path in map(Path, seen["paths"]):
        assert path.is_relative_to(site / "pipeline"), path
        assert path.exists(), path

    # What it read there is the source tree's data.
    causes = tomllib.loads((ROOT / "schemas" / "causes.toml").read_text())
    ids = {c["id"] for c in causes["causes"]}
    assert set(seen["causes"]) == ids
    layout_files = {p.stem.upper() for p in (ROOT / "schemas" / "panos").glob("*.csv")}
    assert {"DECRYPTION", "TRAFFIC"} <= set(seen["layouts"]) <= layout_files
    index_template = json.loads((ROOT / "schemas" / "ecs" / "index-template.json").read_text())
    assert seen["components"] == sorted(f"p-{c}" for c in index_template["composed_of"])
    checkout_plugin = ROOT / "deploy" / "local" / "es-analysis-plugin"
    assert seen["plugin_digest"] == es_plugin.source_digest(checkout_plugin, "9.5.4")
    rules = {p.name for p in (ROOT / "deploy" / "prometheus" / "rules").glob("*.yml")}
    assert set(seen["rules"]) == rules
    alertmanager = ROOT / "deploy" / "alertmanager" / "alertmanager.yml"
    assert seen["alertmanager"] == alertmanager.read_text()
    report = ROOT / "pipeline" / "report" / "template.html"
    assert seen["report_template"] == report.read_text(encoding="utf-8")
