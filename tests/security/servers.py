"""Dedicated servers with security switched on, for the security tests: a Kafka broker with
SASL/SCRAM listeners (plain and TLS) and an Elasticsearch node with TLS, users and API keys.

They run from the artifacts the local stack already fetched (the Kafka classpath and the
Elasticsearch zip in the stack's cache dir) on their own ports and directories; the shared
stack is never touched."""

from __future__ import annotations

import contextlib
import grp
import json
import os
import pwd
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.resources import DEPLOY
from pipeline.settings import Settings
from pipeline.stack import components, config, es_plugin, fetch, procs
from pipeline.stack.layout import Layout

SCRAM_JAAS = "org.apache.kafka.common.security.scram.ScramLoginModule required;"


@dataclass(frozen=True)
class SecureKafka:
    sasl_plaintext: str  # host:port
    sasl_ssl: str
    ssl: str  # TLS with client certificates required
    plaintext: str  # the broker's own, unauthenticated listener (for admin from tests)
    log: Path


def _wait(what: str, check, proc: subprocess.Popen, log: Path, timeout: float = 150) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited:\n{procs.log_tail(log, 40)}")
        if check():
            return
        time.sleep(1.0)
    raise RuntimeError(f"{what} not ready within {timeout:.0f}s:\n{procs.log_tail(log, 40)}")


@contextlib.contextmanager
def secure_kafka(
    base: Settings,
    folder: Path,
    ports: dict[str, int],
    users: dict[str, str],
    server_pem: Path,
    *,
    client_ca: Path,
) -> Iterator[SecureKafka]:
    """A KRaft broker with PLAINTEXT (internal), SASL_PLAINTEXT, SASL_SSL and SSL listeners;
    the SCRAM-SHA-512 ``users`` are created when the storage is formatted; the SSL listener
    requires a client certificate signed by ``client_ca``."""
    layout = Layout(base.cache_dir, base.es_user)
    manifest = fetch.read_manifest(layout)
    libs = layout.kafka_libs(manifest.get("kafka_version", base.kafka_version))
    java = fetch.kafka_java()
    host = "127.0.0.1"
    data = folder / "data"
    data.mkdir(parents=True)
    props = folder / "server.properties"
    props.write_text(
        "\n".join(
            [
                "process.roles=broker,controller",
                "node.id=1",
                f"controller.quorum.bootstrap.servers={host}:{ports['controller']}",
                "controller.listener.names=CONTROLLER",
                f"listeners=INTERNAL://{host}:{ports['internal']},"
                f"SASL_PLAINTEXT://{host}:{ports['sasl']},SASL_SSL://{host}:{ports['sasl_ssl']},"
                f"SSL://{host}:{ports['ssl']},CONTROLLER://{host}:{ports['controller']}",
                f"advertised.listeners=INTERNAL://{host}:{ports['internal']},"
                f"SASL_PLAINTEXT://{host}:{ports['sasl']},SASL_SSL://{host}:{ports['sasl_ssl']},"
                f"SSL://{host}:{ports['ssl']}",
                "inter.broker.listener.name=INTERNAL",
                "listener.security.protocol.map=CONTROLLER:PLAINTEXT,INTERNAL:PLAINTEXT,"
                "SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL,SSL:SSL",
                "listener.name.ssl.ssl.client.auth=required",
                "ssl.truststore.type=PEM",
                f"ssl.truststore.location={client_ca}",
                "sasl.enabled.mechanisms=SCRAM-SHA-512",
                f"listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config={SCRAM_JAAS}",
                f"listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config={SCRAM_JAAS}",
                "ssl.keystore.type=PEM",
                f"ssl.keystore.location={server_pem}",
                f"log.dirs={data}",
                "num.network.threads=2",
                "num.io.threads=2",
                "num.partitions=1",
                "offsets.topic.replication.factor=1",
                "offsets.topic.num.partitions=1",
                "transaction.state.log.replication.factor=1",
                "transaction.state.log.min.isr=1",
                "share.coordinator.state.topic.replication.factor=1",
                "share.coordinator.state.topic.min.isr=1",
                "group.initial.rebalance.delay.ms=0",
                "auto.create.topics.enable=true",
                "",
            ]
        )
    )
    scram = [
        arg
        for name, password in users.items()
        for arg in ("--add-scram", f"SCRAM-SHA-512=[name={name},password={password}]")
    ]
    subprocess.run(
        [java, "-Xmx256m", "-cp", f"{libs}/*", "kafka.tools.StorageTool", "format",
         "--standalone", "-t", config.kafka_cluster_id(), "-c", str(props), *scram],
        check=True, capture_output=True, timeout=180,
    )  # fmt: skip
    log4j = folder / "log4j2.properties"
    shutil.copyfile(DEPLOY / "local" / "kafka-log4j2.properties", log4j)
    log = folder / "kafka.log"
    proc = procs.spawn(
        [java, "-Xms256m", "-Xmx384m", "-XX:+UseG1GC", f"-Dlog4j2.configurationFile=file:{log4j}",
         "-cp", f"{libs}/*", "kafka.Kafka", str(props)],
        log, env=dict(os.environ), cwd=folder,
    )  # fmt: skip
    internal = f"{host}:{ports['internal']}"
    try:
        probe = Settings(stack_host=host, kafka_port=ports["internal"])
        _wait("secure Kafka", lambda: components.PROBES["kafka"](probe).ok, proc, log)
        yield SecureKafka(
            f"{host}:{ports['sasl']}",
            f"{host}:{ports['sasl_ssl']}",
            f"{host}:{ports['ssl']}",
            internal,
            log,
        )
    finally:
        procs.stop_group(proc.pid, timeout_s=20)


@dataclass(frozen=True)
class SecureElasticsearch:
    url: str  # https://127.0.0.1:port
    ca: Path
    user: str
    password: str
    log: Path


def _es_request(url: str, ca: Path, auth: tuple[str, str], method: str = "GET", body=None):
    import base64
    import ssl

    context = ssl.create_default_context(cafile=str(ca))
    token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
    request = urllib.request.Request(
        url,
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Basic {token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=5, context=context) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        raise OSError(f"HTTP {exc.code} from {url}: {exc.read()[:500]!r}") from None


@contextlib.contextmanager
def secure_elasticsearch(
    base: Settings,
    ports: dict[str, int],
    http_pair: Any,
    ca_cert: Path,
    *,
    user: str,
    password: str,
) -> Iterator[SecureElasticsearch]:
    """A node with ``xpack.security.enabled``, TLS on HTTP and a superuser ``user`` made with
    ``elasticsearch-users``; run as the stack's unprivileged ES account when we are root."""
    layout = Layout(base.cache_dir, base.es_user)
    version = fetch.read_manifest(layout)["es_version"]
    java_home = fetch.es_java_home(base)
    # Not under pytest's tmp dir: the Elasticsearch account must be able to enter the path.
    root = Path(tempfile.mkdtemp(prefix="decryptscope-secure-es-", dir="/tmp"))
    root.chmod(0o755)
    try:
        home = fetch.unpack_elasticsearch(layout.es_zip(version), root, version)
        es_plugin.ensure(java_home, layout, home, version)
        conf = home / "config"
        certs = conf / "certs"
        certs.mkdir()
        for src, name in ((http_pair.cert, "http.crt"), (http_pair.key, "http.key"),
                          (ca_cert, "ca.crt")):  # fmt: skip
            shutil.copyfile(src, certs / name)
        (conf / "jvm.options.d").mkdir(exist_ok=True)
        (conf / "jvm.options.d" / "heap.options").write_text(config.heap_options("384m"))
        (conf / "elasticsearch.yml").write_text(
            "\n".join(
                [
                    "cluster.name: decryptscope-secure",
                    "node.name: secure-1",
                    "network.host: 127.0.0.1",
                    f"http.port: {ports['http']}",
                    f"transport.port: {ports['transport']}",
                    "discovery.type: single-node",
                    f"path.data: {root / 'data'}",
                    f"path.logs: {root / 'logs'}",
                    "cluster.routing.allocation.disk.threshold_enabled: false",
                    "xpack.security.enabled: true",
                    "xpack.security.authc.api_key.enabled: true",
                    "xpack.security.http.ssl.enabled: true",
                    "xpack.security.http.ssl.certificate: certs/http.crt",
                    "xpack.security.http.ssl.key: certs/http.key",
                    "xpack.security.http.ssl.certificate_authorities: [certs/ca.crt]",
                    "xpack.security.transport.ssl.enabled: false",
                    "",
                ]
            )
        )
        env = {**os.environ, "ES_JAVA_HOME": java_home, "ES_PATH_CONF": str(conf),
               "HOME": str(root)}  # fmt: skip
        subprocess.run(
            [str(home / "bin" / "elasticsearch-users"), "useradd", user, "-p", password,
             "-r", "superuser"],
            check=True, capture_output=True, env=env, timeout=120,
        )  # fmt: skip
        cmd = [str(home / "bin" / "elasticsearch")]
        if os.geteuid() == 0:
            entry = pwd.getpwnam(base.es_user)
            group = grp.getgrgid(entry.pw_gid).gr_name
            subprocess.run(["chown", "-R", f"{base.es_user}:{group}", str(root)], check=True)
            cmd = ["setpriv", f"--reuid={entry.pw_uid}", f"--regid={entry.pw_gid}",
                   "--clear-groups", "--", *cmd]  # fmt: skip
        log = root / "es.out"
        proc = procs.spawn(cmd, log, env=env, cwd=home)
        url = f"https://127.0.0.1:{ports['http']}"

        def ready() -> bool:
            try:
                health = _es_request(f"{url}/_cluster/health", ca_cert, (user, password))
            except OSError:
                return False
            return health.get("status") in {"green", "yellow"}

        try:
            _wait("secure Elasticsearch", ready, proc, log, timeout=240)
            yield SecureElasticsearch(url, ca_cert, user, password, log)
        finally:
            procs.stop_group(proc.pid, timeout_s=30)
    finally:
        shutil.rmtree(root, ignore_errors=True)
