"""The four servers of the local stack: for each, its ports, its address, how to prepare its
files and the command that runs it, and its health probe."""

from __future__ import annotations

import grp
import json
import os
import pwd
import shutil
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from pipeline import resources
from pipeline.errors import StackError
from pipeline.settings import Settings
from pipeline.stack import config, es_plugin, fetch, health
from pipeline.stack.layout import Layout


@dataclass(frozen=True)
class Launch:
    cmd: list[str]
    cwd: Path
    version: str
    env: dict[str, str] = field(default_factory=dict)  # added to the inherited environment


PORTS: dict[str, tuple[str, ...]] = {
    "kafka": ("kafka_port", "kafka_controller_port"),
    "elasticsearch": ("es_port", "es_transport_port"),
    "prometheus": ("prometheus_port",),
    "alertmanager": ("alertmanager_port",),
}

PROBES: dict[str, Callable[[Settings], health.Health]] = {
    "kafka": health.probe_kafka,
    "elasticsearch": health.probe_elasticsearch,
    "prometheus": health.probe_prometheus,
    "alertmanager": health.probe_alertmanager,
}


def address(name: str, settings: Settings) -> str:
    host = settings.stack_host
    return {
        "kafka": f"{host}:{settings.kafka_port}",
        "elasticsearch": f"http://{host}:{settings.es_port}",
        "prometheus": f"http://{host}:{settings.prometheus_port}",
        "alertmanager": f"http://{host}:{settings.alertmanager_port}",
    }[name]


def _fresh_dir(path: Path) -> Path:
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    return path


# --- Kafka ----------------------------------------------------------------------------------
def _format_kafka(java: str, libs: Path, props: Path, data: Path, settings: Settings) -> None:
    """Format the KRaft storage once; again only when the controller address changed (the
    standalone quorum stores it)."""
    marker = data / "decryptscope-format.json"
    wanted = {"controller": f"{settings.stack_host}:{settings.kafka_controller_port}"}
    try:
        if json.loads(marker.read_text()) == wanted and (data / "meta.properties").exists():
            return
    except (OSError, ValueError):
        pass
    _fresh_dir(data)
    cmd = [
        java,
        "-Xmx256m",
        "-cp",
        f"{libs}/*",
        "kafka.tools.StorageTool",
        "format",
        "--standalone",
        "-t",
        config.kafka_cluster_id(),
        "-c",
        str(props),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=180, check=False)
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-15:])
        raise StackError(f"formatting Kafka storage in {data} failed:\n{tail}")
    marker.write_text(json.dumps(wanted))


def prepare_kafka(settings: Settings, layout: Layout, manifest: Mapping[str, str]) -> Launch:
    java = fetch.kafka_java()
    version = manifest.get("kafka_version", settings.kafka_version)
    libs = layout.kafka_libs(version)
    conf = layout.config("kafka")
    conf.mkdir(parents=True, exist_ok=True)
    data = layout.data("kafka")
    template = (resources.DEPLOY / "local" / "kafka-server.properties").read_text()
    props = conf / "server.properties"
    props.write_text(config.kafka_properties(template, settings, str(data)))
    log4j = conf / "log4j2.properties"
    shutil.copyfile(resources.DEPLOY / "local" / "kafka-log4j2.properties", log4j)
    _format_kafka(java, libs, props, data, settings)
    heap = config.heap_options(settings.kafka_heap).split()
    cmd = [
        java,
        *heap,
        "-XX:+UseG1GC",
        "-XX:MaxGCPauseMillis=20",
        "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile=file:{log4j}",
        "-cp",
        f"{libs}/*",
        "kafka.Kafka",
        str(props),
    ]
    return Launch(cmd, conf, version)


# --- Elasticsearch --------------------------------------------------------------------------
def _es_account(user: str) -> tuple[int, int]:
    """The unprivileged account Elasticsearch runs as (created when missing)."""
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        done = subprocess.run(
            [
                "useradd",
                "--system",
                "--user-group",
                "--no-create-home",
                "--home-dir",
                "/nonexistent",
                "--shell",
                "/usr/sbin/nologin",
                user,
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise StackError(
                f"cannot create the system user {user!r} for Elasticsearch (it refuses to "
                f"run as root): {done.stderr.strip()}. Fix: create it, or set "
                "DECRYPTSCOPE_ES_USER to an existing unprivileged user"
            ) from None
        entry = pwd.getpwnam(user)
    if entry.pw_uid == 0:
        raise StackError(f"es_user {user!r} is root; Elasticsearch refuses to run as root")
    return entry.pw_uid, entry.pw_gid


def prepare_elasticsearch(
    settings: Settings, layout: Layout, manifest: Mapping[str, str]
) -> Launch:
    java_home = fetch.es_java_home(settings)
    version = manifest["es_version"]
    as_root = os.geteuid() == 0
    account = _es_account(settings.es_user) if as_root else None
    root = layout.es_root
    root.mkdir(parents=True, exist_ok=True)
    if root != layout.es_link and not layout.es_link.is_symlink():
        if layout.es_link.exists():
            shutil.rmtree(layout.es_link)
        layout.es_link.symlink_to(root)
    home = fetch.unpack_elasticsearch(layout.es_zip(version), root, version)
    es_plugin.ensure(java_home, layout, home, version)
    data, logs = root / "data", root / "logs"
    for path in (data, logs, home / "config" / "jvm.options.d"):
        path.mkdir(parents=True, exist_ok=True)
    template = (resources.DEPLOY / "local" / "elasticsearch.yml").read_text()
    (home / "config" / "elasticsearch.yml").write_text(
        config.elasticsearch_yml(
            template,
            settings,
            str(data),
            str(logs),
            security_module=(home / "modules" / "x-pack-security").is_dir(),
        )
    )
    (home / "config" / "jvm.options.d" / "heap.options").write_text(
        config.heap_options(settings.es_heap)
    )
    env = {"ES_JAVA_HOME": java_home, "HOME": str(root)}
    cmd = [str(home / "bin" / "elasticsearch")]
    if account is not None:
        uid, gid = account
        group = grp.getgrgid(gid).gr_name
        done = subprocess.run(
            ["chown", "-R", f"{settings.es_user}:{group}", str(root)],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise StackError(f"cannot give {root} to {settings.es_user}: {done.stderr.strip()}")
        cmd = ["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups", "--", *cmd]
    return Launch(cmd, home, version, env)


# --- Prometheus and Alertmanager ------------------------------------------------------------
def _binary(name: str) -> str:
    path = fetch.find_binary(name)
    if path is None:
        raise StackError(
            f"{name} is not installed. Fix: apt-get install -y --no-install-recommends "
            f"{fetch.APT_PACKAGES[name]}"
        )
    return path


def _version_of(binary: str) -> str:
    try:
        out = subprocess.run(
            [binary, "--version"], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    words = (out.stdout + out.stderr).split()
    return words[2].split("+")[0] if len(words) > 2 and words[1] == "version" else ""


def write_prometheus_config(settings: Settings, conf: Path) -> Path:
    """The runtime prometheus.yml with this stack's addresses, and the rules beside it."""
    conf.mkdir(parents=True, exist_ok=True)
    source = resources.DEPLOY / "prometheus"
    text = config.render_prometheus(
        (source / "prometheus.yml").read_text(), config.prometheus_addresses(settings)
    )
    target = conf / "prometheus.yml"
    target.write_text(text)
    rules = _fresh_dir(conf / "rules")
    if (source / "rules").is_dir():
        for rule_file in sorted((source / "rules").glob("*.yml")):
            shutil.copyfile(rule_file, rules / rule_file.name)
    return target


def prepare_prometheus(settings: Settings, layout: Layout, manifest: Mapping[str, str]) -> Launch:
    binary = _binary("prometheus")
    conf = layout.config("prometheus")
    config_file = write_prometheus_config(settings, conf)
    data = layout.data("prometheus")
    data.mkdir(parents=True, exist_ok=True)
    cmd = [
        binary,
        f"--config.file={config_file}",
        f"--storage.tsdb.path={data}",
        f"--web.listen-address={settings.stack_host}:{settings.prometheus_port}",
        "--web.enable-lifecycle",
        "--storage.tsdb.retention.time=2d",
    ]
    return Launch(cmd, conf, _version_of(binary))


def prepare_alertmanager(settings: Settings, layout: Layout, manifest: Mapping[str, str]) -> Launch:
    binary = _binary("alertmanager")
    conf = layout.config("alertmanager")
    config_file = write_alertmanager_config(conf)
    data = layout.data("alertmanager")
    data.mkdir(parents=True, exist_ok=True)
    cmd = [
        binary,
        f"--config.file={config_file}",
        f"--storage.path={data}",
        f"--web.listen-address={settings.stack_host}:{settings.alertmanager_port}",
        "--cluster.listen-address=",  # one node: no gossip port
    ]
    return Launch(cmd, conf, _version_of(binary))


PREPARE: dict[str, Callable[[Settings, Layout, Mapping[str, str]], Launch]] = {
    "kafka": prepare_kafka,
    "elasticsearch": prepare_elasticsearch,
    "prometheus": prepare_prometheus,
    "alertmanager": prepare_alertmanager,
}


def write_alertmanager_config(conf: Path) -> Path:
    conf.mkdir(parents=True, exist_ok=True)
    config_file = conf / "alertmanager.yml"
    shutil.copyfile(resources.DEPLOY / "alertmanager" / "alertmanager.yml", config_file)
    return config_file


def reload(name: str, settings: Settings, layout: Layout) -> bool:
    """Give a running Prometheus or Alertmanager the current files from deploy/ (rules change
    while the stack runs). False for servers that have nothing to reload."""
    if name == "prometheus":
        write_prometheus_config(settings, layout.config(name))
    elif name == "alertmanager":
        write_alertmanager_config(layout.config(name))
    else:
        return False
    try:
        status, body = health.http_post(f"{address(name, settings)}/-/reload")
    except OSError as exc:
        raise StackError(f"cannot reload {name}: {exc}") from exc
    if status != 200:
        text = body.decode("utf-8", "replace").strip()
        raise StackError(
            f"{name} refused the configuration from deploy/ (HTTP {status}): {text}. "
            f"Fix the file (promtool check config / amtool check-config), then run "
            "`decryptscope stack up` again; the server keeps its previous configuration."
        )
    return True
