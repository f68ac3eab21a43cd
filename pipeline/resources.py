"""Where the files the program reads at run time are: the data of ``schemas/``, the stack
configuration of ``deploy/`` and the package's own assets.

The data is kept once, at the top of the source tree. The wheel maps what the program reads
into ``pipeline/_data/`` (``[tool.hatch.build.targets.wheel]`` in pyproject.toml), so an
installed copy finds it inside the package; a checkout or an editable install, which has no
``_data``, reads the top-level directories. Paths, not traversables: javac, Maven and the
stack's servers are handed these files by name, which pip's unpacked installs allow."""

from __future__ import annotations

from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path

# The top of the source tree when the package runs from a checkout. Tests and tools find here
# what the wheel does not carry (grafana/, tests/, deploy/docker-compose.yml).
ROOT = Path(__file__).resolve().parent.parent

_PACKAGE = files("pipeline")
_SHIPPED = _PACKAGE / "_data"


def _data_dir(name: str) -> Path:
    shipped = _SHIPPED / name
    if isinstance(shipped, Path) and shipped.is_dir():
        return shipped
    return ROOT / name


SCHEMAS = _data_dir("schemas")
DEPLOY = _data_dir("deploy")
REPORT_TEMPLATE: Traversable = _PACKAGE / "report" / "template.html"
