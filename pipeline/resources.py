"""Where the project's data files live (schemas/, deploy/, grafana/): beside the package in the
source tree, which is how the project is installed (editable) and run."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCHEMAS = ROOT / "schemas"
DEPLOY = ROOT / "deploy"
GRAFANA = ROOT / "grafana"
SAMPLES = ROOT / "tests" / "golden"
