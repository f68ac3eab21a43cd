"""Getting the servers onto the machine: the Kafka classpath and the Elasticsearch
integ-test-zip from Maven Central (once, into the cache), Prometheus and Alertmanager from
Debian, and checks that the right Java is there."""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path

from pipeline import resources
from pipeline.errors import StackError
from pipeline.settings import Settings
from pipeline.stack import es_plugin
from pipeline.stack.layout import Layout

Say = Callable[[str], None]

APT_PACKAGES = {"prometheus": "prometheus", "alertmanager": "prometheus-alertmanager"}
ALERTMANAGER_BINARIES = ("prometheus-alertmanager", "alertmanager")

_NOT_FOUND = ("Could not find artifact", "Failure to find", "was not found in")
_NETWORK = (
    "Could not transfer",
    "Failure to transfer",
    "Unknown host",
    "UnknownHost",
    "Connection refused",
    "Connect to",
    "Network is unreachable",
    "No route to host",
    "timed out",
    "Temporary failure in name resolution",
)


def classify_maven_failure(output: str) -> str:
    """'not_found' (the version does not exist), 'network' (Maven Central unreachable) or
    'other', from what Maven printed."""
    if any(marker in output for marker in _NOT_FOUND):
        return "not_found"
    if any(marker in output for marker in _NETWORK):
        return "network"
    return "other"


MIRROR_SETTINGS = """<settings xmlns="http://maven.apache.org/SETTINGS/1.0.0">
  <mirrors>
    <mirror>
      <id>central</id>
      <mirrorOf>*</mirrorOf>
      <url>{url}</url>
    </mirror>
  </mirrors>
</settings>
"""


def maven_settings_file(settings: Settings, layout: Layout) -> Path | None:
    """A Maven settings.xml sending every download to ``settings.maven_repository``. The mirror
    keeps the id `central` so what ~/.m2 already holds from Central still counts."""
    if not settings.maven_repository:
        return None
    path = layout.downloads / "maven-settings.xml"
    path.parent.mkdir(parents=True, exist_ok=True)
    url = html.escape(settings.maven_repository, quote=True)
    path.write_text(MIRROR_SETTINGS.format(url=url))
    return path


def mvn_command(
    execution: str, properties: dict[str, str], pom: Path, maven_settings: Path | None = None
) -> list[str]:
    mvn = shutil.which("mvn")
    if mvn is None:
        raise StackError(
            "Maven (mvn) is not installed; it fetches Kafka and Elasticsearch from Maven "
            "Central. Fix: apt-get install -y --no-install-recommends maven"
        )
    args = [mvn, "-B", "-q", "-Dstyle.color=never", "-f", str(pom)]
    if maven_settings is not None:
        args += ["-s", str(maven_settings)]
    args.append(execution)
    args += [f"-D{key}={value}" for key, value in sorted(properties.items())]
    return args


def _run_maven(cmd: Sequence[str]) -> tuple[int, str]:
    try:
        done = subprocess.run(
            list(cmd),
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as exc:
        raise StackError(
            "Maven did not finish within 15 minutes; is Maven Central reachable? "
            "(check https://repo.maven.apache.org/maven2/ or a mirror in ~/.m2/settings.xml)"
        ) from exc
    return done.returncode, (done.stdout or "") + (done.stderr or "")


_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_MAVEN_BOILERPLATE = ("To see the full", "Re-run Maven", "For more information", "[Help 1]")


def maven_cause(output: str, lines: int = 6) -> str:
    """The lines of Maven's output that say what went wrong, without its boilerplate."""
    kept = []
    for line in _ANSI.sub("", output).splitlines():
        text = line.strip().removesuffix(" -> [Help 1]")
        message = text.removeprefix("[ERROR]").strip()
        if not message or message.startswith(_MAVEN_BOILERPLATE):
            continue
        kept.append(text)
    return "\n".join(kept[-lines:])


def _maven_error(what: str, output: str) -> StackError:
    tail = maven_cause(output)
    if classify_maven_failure(output) == "network":
        return StackError(
            f"cannot fetch {what}: Maven Central (or the mirror in maven_repository) is "
            "unreachable. Fix: check the network or proxy, or set DECRYPTSCOPE_MAVEN_REPOSITORY "
            f"to a reachable mirror, then run `decryptscope stack fetch` again.\n{tail}"
        )
    return StackError(f"cannot fetch {what} with Maven:\n{tail}")


def fetch_kafka(settings: Settings, layout: Layout, say: Say) -> Path:
    libs = layout.kafka_libs(settings.kafka_version)
    done = libs / ".complete"
    if done.exists():
        return libs
    say(f"fetching the Kafka {settings.kafka_version} classpath from Maven Central")
    if libs.exists():
        shutil.rmtree(libs)  # a fetch that stopped half-way
    cmd = mvn_command(
        "dependency:copy-dependencies@kafka-libs",
        {
            "out.dir": str(libs.parent),
            "kafka.version": settings.kafka_version,
            "log4j.version": settings.log4j_version,
        },
        resources.DEPLOY / "local" / "pom.xml",
        maven_settings_file(settings, layout),
    )
    rc, output = _run_maven(cmd)
    if rc != 0 or not any(libs.glob("kafka_2.13-*.jar")):
        raise _maven_error(f"Kafka {settings.kafka_version}", output)
    done.write_text(settings.kafka_version + "\n")
    return libs


def fetch_elasticsearch(settings: Settings, layout: Layout, say: Say) -> str:
    """Download the first of ``settings.es_versions`` that resolves; return its version."""
    failures: list[tuple[str, str]] = []
    for version in settings.es_versions:
        archive = layout.es_zip(version)
        if archive.exists() and zipfile.is_zipfile(archive):
            return version
        say(f"fetching Elasticsearch {version} (integ-test-zip) from Maven Central")
        cmd = mvn_command(
            "dependency:copy@es-zip",
            {"out.dir": str(layout.downloads), "es.version": version},
            resources.DEPLOY / "local" / "pom.xml",
            maven_settings_file(settings, layout),
        )
        rc, output = _run_maven(cmd)
        if rc == 0 and archive.exists():
            return version
        kind = classify_maven_failure(output)
        failures.append((version, kind))
        if kind == "network":
            raise _maven_error(f"Elasticsearch {version}", output)
        say(f"Elasticsearch {version} does not resolve ({kind}); trying the next version")
    tried = ", ".join(f"{v} ({k})" for v, k in failures) or "none configured"
    raise StackError(
        f"no Elasticsearch version in es_versions resolves on Maven Central: {tried}. "
        "Fix: set DECRYPTSCOPE_ES_VERSIONS to versions that exist (e.g. 9.5.4)"
    )


def unpack_elasticsearch(archive: Path, dest_parent: Path, version: str) -> Path:
    """Unzip keeping the files' modes (zipfile alone drops the executable bits)."""
    home = dest_parent / f"elasticsearch-{version}"
    marker = home / ".unpacked"
    if marker.exists():
        return home
    if home.exists():
        shutil.rmtree(home)
    dest_parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(archive) as zf:
        for info in zf.infolist():
            target = Path(zf.extract(info, dest_parent))
            mode = (info.external_attr >> 16) & 0o777
            if mode:
                target.chmod(mode)
    if not (home / "bin" / "elasticsearch").exists():
        raise StackError(f"{archive} does not hold elasticsearch-{version}/bin/elasticsearch")
    marker.write_text(version + "\n")
    return home


def java_major(java: str) -> int:
    try:
        out = subprocess.run(
            [java, "-version"], capture_output=True, text=True, timeout=30, check=False
        ).stderr
    except OSError:
        return 0
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out)
    if not match:
        return 0
    major = int(match[1])
    return int(match[2] or 0) if major == 1 else major


def kafka_java() -> str:
    java = shutil.which("java")
    if java is None or java_major(java) < 17:
        raise StackError(
            "Kafka needs Java 17 or newer as `java` on PATH. "
            "Fix: apt-get install -y --no-install-recommends default-jre-headless"
        )
    return java


def es_java_home(settings: Settings) -> str:
    home = settings.es_java_home
    java = Path(home) / "bin" / "java"
    if not java.exists():
        raise StackError(
            f"Elasticsearch 9 needs Java 21 or newer; es_java_home={home} has no bin/java. "
            "Fix: install a JDK 21+ (e.g. Temurin 25) and set DECRYPTSCOPE_ES_JAVA_HOME "
            "(or ES_JAVA_HOME) to it"
        )
    major = java_major(str(java))
    if major < 21:
        raise StackError(
            f"Elasticsearch 9 needs Java 21 or newer; {java} is Java {major or 'unknown'}. "
            "Fix: set DECRYPTSCOPE_ES_JAVA_HOME (or ES_JAVA_HOME) to a JDK 21+"
        )
    return home


def find_binary(component: str) -> str | None:
    names = ALERTMANAGER_BINARIES if component == "alertmanager" else ("prometheus",)
    return next((path for path in map(shutil.which, names) if path), None)


def ensure_packages(components: Sequence[str], say: Say) -> None:
    """Install Debian's Prometheus/Alertmanager when missing (as root), else say how."""
    missing = [APT_PACKAGES[c] for c in components if c in APT_PACKAGES and not find_binary(c)]
    if not missing:
        return
    install = ["apt-get", "install", "-y", "--no-install-recommends", *missing]
    if os.geteuid() != 0:
        raise StackError(f"{', '.join(missing)} not installed. Fix: sudo {' '.join(install)}")
    say(f"installing {', '.join(missing)} from Debian")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update"], install):
        done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
        if done.returncode != 0:
            tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-10:])
            raise StackError(f"`{' '.join(cmd)}` failed (rc {done.returncode}):\n{tail}")
    still = [APT_PACKAGES[c] for c in components if c in APT_PACKAGES and not find_binary(c)]
    if still:
        raise StackError(f"{', '.join(still)} still missing after apt-get install")


def read_manifest(layout: Layout) -> dict[str, str]:
    try:
        data = json.loads(layout.manifest.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def fetch(settings: Settings, layout: Layout, components: Sequence[str], say: Say) -> dict:
    """Everything the selected components need, fetched once; returns the manifest."""
    manifest = read_manifest(layout)
    if "kafka" in components:
        kafka_java()
        fetch_kafka(settings, layout, say)
        manifest["kafka_version"] = settings.kafka_version
    if "elasticsearch" in components:
        es_java_home(settings)
        known = manifest.get("es_version")
        version = (
            known
            if known in settings.es_versions and layout.es_zip(known).exists()
            else fetch_elasticsearch(settings, layout, say)
        )
        manifest["es_version"] = version
        es_plugin.build(settings.es_java_home, layout, version, say)
    ensure_packages(components, say)
    layout.manifest.parent.mkdir(parents=True, exist_ok=True)
    layout.manifest.write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest
