"""The analysis components the `.security` index needs, as a small Elasticsearch plugin.

Why it exists: the integ-test-zip on Maven Central ships without the analysis-common module,
but the settings of the `.security` index define an ``email`` analyzer (tokenizer
``uax_url_email``, filters ``pattern_capture``, ``lowercase``, ``unique``). Without them a node
with security on cannot create that index ("Unknown filter type [pattern_capture]"), and API
keys, native users and roles all live there. The plugin (``deploy/local/es-analysis-plugin/``,
stable plugin API, Lucene's own classes; ``lowercase`` is built into the server) is compiled
with the JDK's javac against the jars inside the Elasticsearch zip, once per source digest and
Elasticsearch version, and installed with the node's own ``bin/elasticsearch-plugin``."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import tempfile
import zipfile
from collections.abc import Callable, Iterable
from pathlib import Path

from pipeline import resources
from pipeline.errors import StackError
from pipeline.stack.config import render_template
from pipeline.stack.layout import Layout

Say = Callable[[str], None]

NAME = "decryptscope-analysis"
SOURCE = resources.DEPLOY / "local" / "es-analysis-plugin"
DESCRIPTOR = "stable-plugin-descriptor.properties"
NAMED_COMPONENTS = "named_components.json"
COMPILE_AGAINST = (
    "elasticsearch-plugin-api",
    "elasticsearch-plugin-analysis-api",
    "lucene-core",
    "lucene-analysis-common",
)
JAVA_RELEASE = "21"  # what Elasticsearch 9 runs on at the least
_FIXED_TIME = (1980, 1, 1, 0, 0, 0)  # same sources, same bytes


def source_digest(source: Path, es_version: str) -> str:
    """A short digest of every file under ``source`` and the Elasticsearch version."""
    digest = hashlib.sha256(es_version.encode())
    for path in sorted(p for p in source.rglob("*") if p.is_file()):
        digest.update(path.relative_to(source).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()[:12]


def classpath_members(names: Iterable[str], members: Iterable[str], es_version: str) -> list[str]:
    """The zip members ``elasticsearch-<v>/lib/<name>-<version>.jar`` for each of ``names``;
    a StackError naming what the zip lacks."""
    members = list(members)
    found = []
    for name in names:
        pattern = re.compile(
            rf"elasticsearch-{re.escape(es_version)}/lib/{re.escape(name)}-\d[^/]*\.jar"
        )
        match = next((m for m in members if pattern.fullmatch(m)), None)
        if match is None:
            raise StackError(
                f"the Elasticsearch {es_version} zip has no lib/{name}-*.jar to compile the "
                f"{NAME} plugin against"
            )
        found.append(match)
    return found


def render_descriptor(template: str, version: str, es_version: str) -> str:
    return render_template(
        template, {"version": version, "es_version": es_version}, source=str(SOURCE / DESCRIPTOR)
    )


def descriptor_version(text: str) -> str | None:
    """The ``version`` of a plugin descriptor (Java properties), None without one."""
    match = re.search(r"^[ \t]*version[ \t]*[=:][ \t]*(\S+)", text, re.MULTILINE)
    return match[1] if match else None


def plugin_zip(layout: Layout, es_version: str, version: str) -> Path:
    return layout.downloads / "es-plugin" / f"{NAME}-{es_version}-{version}.zip"


def javac(java_home: str) -> str:
    path = Path(java_home) / "bin" / "javac"
    if not path.exists():
        raise StackError(
            f"the {NAME} Elasticsearch plugin is compiled from source, but es_java_home="
            f"{java_home} has no bin/javac (a JRE, not a JDK). Fix: install a JDK 21+ (e.g. "
            "Temurin 25) and set DECRYPTSCOPE_ES_JAVA_HOME (or ES_JAVA_HOME) to it"
        )
    return str(path)


def _add(archive: zipfile.ZipFile, name: str, data: bytes) -> None:
    archive.writestr(zipfile.ZipInfo(name, _FIXED_TIME), data, zipfile.ZIP_DEFLATED)


def build(java_home: str, layout: Layout, es_version: str, say: Say) -> Path:
    """The plugin zip for ``es_version``, compiled when its sources changed (else cached)."""
    version = source_digest(SOURCE, es_version)
    target = plugin_zip(layout, es_version, version)
    if target.exists():
        return target
    compiler = javac(java_home)
    say(f"building the {NAME} Elasticsearch plugin (javac)")
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        work = Path(tmp)
        with zipfile.ZipFile(layout.es_zip(es_version)) as es_zip:
            jars = [
                Path(es_zip.extract(member, work / "lib"))
                for member in classpath_members(COMPILE_AGAINST, es_zip.namelist(), es_version)
            ]
        sources = sorted(str(p) for p in (SOURCE / "src").rglob("*.java"))
        classes = work / "classes"
        done = subprocess.run(
            [compiler, "--release", JAVA_RELEASE, "-encoding", "UTF-8", "-d", str(classes),
             "-cp", os.pathsep.join(map(str, jars)), *sources],
            capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
        if done.returncode != 0:
            tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-20:])
            raise StackError(f"javac could not compile {SOURCE / 'src'}:\n{tail}")
        jar = work / f"{NAME}.jar"
        with zipfile.ZipFile(jar, "w") as out:
            _add(out, "META-INF/MANIFEST.MF", b"Manifest-Version: 1.0\r\n\r\n")
            for path in sorted(p for p in classes.rglob("*") if p.is_file()):
                _add(out, path.relative_to(classes).as_posix(), path.read_bytes())
        descriptor = render_descriptor((SOURCE / DESCRIPTOR).read_text(), version, es_version)
        partial = work / "plugin.zip"
        with zipfile.ZipFile(partial, "w") as out:
            _add(out, jar.name, jar.read_bytes())
            _add(out, DESCRIPTOR, descriptor.encode())
            _add(out, NAMED_COMPONENTS, (SOURCE / NAMED_COMPONENTS).read_bytes())
        partial.replace(target)
    for old in target.parent.glob(f"{NAME}-{es_version}-*.zip"):
        if old != target:
            old.unlink()
    return target


def installed_version(home: Path) -> str | None:
    try:
        return descriptor_version((home / "plugins" / NAME / DESCRIPTOR).read_text())
    except OSError:
        return None


def install(home: Path, archive: Path, java_home: str, say: Say) -> bool:
    """Install ``archive`` into the node at ``home`` with its ``bin/elasticsearch-plugin``,
    replacing another build of it; False when that very build is already there."""
    with zipfile.ZipFile(archive) as plugin:
        wanted = descriptor_version(plugin.read(DESCRIPTOR).decode())
    if installed_version(home) == wanted:
        return False
    tool = str(home / "bin" / "elasticsearch-plugin")
    env = {**os.environ, "ES_JAVA_HOME": java_home, "ES_PATH_CONF": str(home / "config")}
    steps = [[tool, "install", "--batch", archive.resolve().as_uri()]]
    if (home / "plugins" / NAME).exists():
        steps.insert(0, [tool, "remove", NAME])
    say(f"installing the {NAME} plugin into {home}")
    for cmd in steps:
        done = subprocess.run(
            cmd, capture_output=True, text=True, env=env, timeout=300, check=False
        )
        if done.returncode != 0:
            tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-15:])
            raise StackError(
                f"`elasticsearch-plugin {cmd[1]}` failed (rc {done.returncode}):\n{tail}"
            )
    return True


def _quiet(_message: str) -> None:
    pass


def ensure(java_home: str, layout: Layout, home: Path, es_version: str, say: Say = _quiet) -> None:
    """Build (when needed) and install (when not there yet) the plugin into ``home``; nothing
    for a distribution with analysis-common, which has these components already."""
    if (home / "modules" / "analysis-common").is_dir():
        return
    install(home, build(java_home, layout, es_version, say), java_home, say)
