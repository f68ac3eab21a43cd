"""Where the files the program reads at run time are: the data of ``schemas/``, the stack
configuration of ``deploy/`` and the package's own assets.

The data is kept once, at the top of the source tree. The wheel maps what the program reads
into ``pipeline/_data/`` (``[tool.hatch.build.targets.wheel]`` in pyproject.toml), so an
installed copy finds it inside the package; a checkout or an editable install, which has no
``_data``, reads the top-level directories. Paths, not traversables: javac, Maven and the
stack's servers are handed these files by name, which pip's unpacked installs allow."""

from __future__ import annotations

import tomllib
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

from pipeline.errors import ConfigError

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


def read_toml(path: Path, what: str, *, schema: int | None = None) -> dict[str, Any]:
    """A TOML data file as a dict; an unreadable or malformed file (or, with ``schema``, one of
    another schema version) is a ConfigError naming ``what`` and the file."""
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{what} {path}: {exc}") from exc
    if schema is not None and data.get("schema") != schema:
        raise ConfigError(f"{what} {path}: schema = {schema} expected, got {data.get('schema')!r}")
    return data
