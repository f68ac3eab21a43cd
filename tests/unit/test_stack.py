"""The local stack's pure parts: configuration rendering, port checks, the status table,
Maven's failure messages. No server is started here."""

from __future__ import annotations

import os
import socket
import stat
from pathlib import Path

import pytest

from pipeline import resources
from pipeline import stack as stack_mod
from pipeline.commands import stack as stack_command
from pipeline.errors import StackError
from pipeline.settings import Settings, load_settings
from pipeline.stack import config, fetch, procs
from pipeline.stack.layout import Layout, others_can_enter

TEMPLATE = (resources.DEPLOY / "prometheus" / "prometheus.yml").read_text()


def _other_ports(tmp_path, **changes) -> Settings:
    return load_settings(env={}, cache_dir=str(tmp_path), **changes)


def test_prometheus_config_gets_the_stack_addresses(tmp_path):
    settings = _other_ports(
        tmp_path,
        prometheus_port=19090,
        alertmanager_port=19093,
        scrape_targets=("127.0.0.1:16066", "10.0.0.5:9466"),
    )
    text = config.render_prometheus(TEMPLATE, config.prometheus_addresses(settings))
    assert '- targets: ["127.0.0.1:19090"]  # @prometheus' in text
    assert '- targets: ["127.0.0.1:19093"]  # @alertmanager' in text
    assert '- targets: ["127.0.0.1:16066", "10.0.0.5:9466"]  # @pipeline' in text
    assert "127.0.0.1:9090" not in text
    assert "scrape_interval: 5s" in text and "evaluation_interval: 5s" in text
    assert '"rules/*.yml"' in text


def test_prometheus_config_with_default_settings_is_the_file_itself():
    rendered = config.render_prometheus(TEMPLATE, config.prometheus_addresses(Settings()))
    assert rendered == TEMPLATE


def test_prometheus_template_markers_must_match():
    with pytest.raises(StackError, match="unknown marker @nosuch"):
        config.render_prometheus('x: ["a"]  # @nosuch\n', {})
    with pytest.raises(StackError, match="no line marked @pipeline"):
        config.render_prometheus('x: ["a"]  # @prometheus\n', {"prometheus": [], "pipeline": []})


def test_kafka_properties_use_the_settings_ports(tmp_path):
    settings = _other_ports(tmp_path, kafka_port=19092, kafka_controller_port=19095)
    template = (resources.DEPLOY / "local" / "kafka-server.properties").read_text()
    text = config.kafka_properties(template, settings, "/data/k")
    lines = set(text.splitlines())
    assert "listeners=PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19095" in lines
    assert "controller.quorum.bootstrap.servers=127.0.0.1:19095" in lines
    assert "log.dirs=/data/k" in lines
    assert not any(line.startswith("controller.quorum.voters") for line in lines)
    assert "$" not in text


def test_elasticsearch_yml_disables_security_only_when_the_module_exists(tmp_path):
    settings = _other_ports(tmp_path, es_port=19200, es_transport_port=19300)
    template = (resources.DEPLOY / "local" / "elasticsearch.yml").read_text()
    with_module = config.elasticsearch_yml(template, settings, "/d", "/l", security_module=True)
    without = config.elasticsearch_yml(template, settings, "/d", "/l", security_module=False)
    assert "http.port: 19200" in with_module and "transport.port: 19300" in with_module
    assert "path.data: /d" in with_module and "path.logs: /l" in with_module
    assert with_module.endswith("xpack.security.enabled: false\n")
    assert "xpack.security" not in without


def test_a_template_placeholder_without_value_is_an_error():
    with pytest.raises(StackError, match="placeholder"):
        config.render_template("a=${missing}", {}, source="t")


@pytest.mark.parametrize("heap", ["512m", "1g", "1024"])
def test_heap_options(heap):
    assert config.heap_options(heap) == f"-Xms{heap}\n-Xmx{heap}\n"


@pytest.mark.parametrize("heap", ["", "512 m", "-Xmx1g", "lots"])
def test_bad_heap_sizes_are_refused(heap):
    with pytest.raises(StackError, match="heap size"):
        config.heap_options(heap)


def test_kafka_cluster_ids_look_like_kafkas_own():
    ids = {config.kafka_cluster_id() for _ in range(200)}
    assert len(ids) == 200
    assert all(len(i) == 22 and not i.startswith("-") and "=" not in i for i in ids)


SS_OUTPUT = """\
LISTEN 0      50     [::ffff:127.0.0.1]:9092  *:*  users:(("java",pid=4242,fd=140))
LISTEN 0      4096   127.0.0.1:9090           0.0.0.0:*  users:(("prometheus",pid=77,fd=7))
LISTEN 0      128    0.0.0.0:2024             0.0.0.0:*
LISTEN 0  4096  *:9093  *:*  users:(("prometheus-aler",pid=78,fd=3),("prometheus-aler",pid=79,fd=3))
"""


def test_ss_output_names_who_holds_a_port():
    owners = procs.parse_ss(SS_OUTPUT)
    assert owners[9092] == [(4242, "java")]
    assert owners[9090] == [(77, "prometheus")]
    assert owners[2024] == []
    assert owners[9093] == [(78, "prometheus-aler"), (79, "prometheus-aler")]


def test_a_taken_port_is_refused_naming_the_setting(tmp_path):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        settings = _other_ports(tmp_path, alertmanager_port=port)
        assert not procs.port_bindable("127.0.0.1", port)
        with pytest.raises(StackError) as caught:
            stack_mod.claim_ports(settings, ["alertmanager"], say=lambda _m: None)
    message = str(caught.value)
    assert f"127.0.0.1:{port} (alertmanager_port)" in message
    assert "DECRYPTSCOPE_ALERTMANAGER_PORT" in message
    assert procs.port_bindable("127.0.0.1", port)


def test_up_stops_at_a_taken_port_before_starting_anything(tmp_path):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        settings = _other_ports(tmp_path, prometheus_port=holder.getsockname()[1])
        with pytest.raises(StackError, match="prometheus_port"):
            stack_mod.up(settings, ["prometheus"], say=lambda _m: None)
    assert not Layout(tmp_path).state("prometheus").exists()
    assert not Layout(tmp_path).log("prometheus").exists()


def test_status_table_lines_up_columns():
    rows = [
        {
            "component": "kafka",
            "version": "4.1.1",
            "address": "127.0.0.1:9092",
            "pid": 12,
            "health": "up (3 topics)",
        },
        {
            "component": "elasticsearch",
            "version": "",
            "address": "http://127.0.0.1:9200",
            "pid": None,
            "health": "down",
        },
    ]
    lines = stack_command.format_table(rows).splitlines()
    assert lines[0].split() == ["COMPONENT", "VERSION", "ADDRESS", "PID", "HEALTH"]
    assert lines[1].split() == ["kafka", "4.1.1", "127.0.0.1:9092", "12", "up", "(3", "topics)"]
    assert lines[2].split() == ["elasticsearch", "-", "http://127.0.0.1:9200", "-", "down"]
    starts = {line.index(word) for line, word in zip(lines, ["VERSION", "4.1.1", "-"], strict=True)}
    assert len(starts) == 1


def test_status_of_a_stack_that_never_ran(tmp_path):
    settings = _other_ports(
        tmp_path, kafka_port=1, es_port=2, prometheus_port=3, alertmanager_port=4
    )
    rows = stack_mod.status_rows(settings, ["kafka", "elasticsearch", "prometheus"])
    assert [(r["component"], r["healthy"], r["pid"], r["health"]) for r in rows] == [
        ("kafka", False, None, "down"),
        ("elasticsearch", False, None, "down"),
        ("prometheus", False, None, "down"),
    ]


def test_down_of_a_stack_that_never_ran_stops_nothing(tmp_path):
    said = []
    settings = _other_ports(tmp_path, kafka_port=1, prometheus_port=3)
    stack_mod.down(settings, ["kafka", "prometheus"], purge=True, say=said.append)
    assert said == [
        "prometheus: not running (nothing this stack started)",
        "kafka: not running (nothing this stack started)",
    ]


def test_purge_keeps_the_data_of_a_server_the_stack_did_not_start(tmp_path):
    layout = Layout(tmp_path)
    layout.data("prometheus").mkdir(parents=True)
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        settings = _other_ports(tmp_path, prometheus_port=other.getsockname()[1])
        said = []
        stack_mod.down(settings, ["prometheus"], purge=True, say=said.append)
    assert "its data is kept" in said[-1]
    assert layout.data("prometheus").exists()
    stack_mod.down(settings, ["prometheus"], purge=True, say=said.append)
    assert said[-1] == "removed prometheus data"
    assert not layout.data("prometheus").exists()


def test_stale_state_of_a_dead_process_is_ignored(tmp_path):
    layout = Layout(tmp_path)
    dead = procs.ProcState("kafka", 999_999_999, 1, "4.1.1", "127.0.0.1:1", "log", 0.0)
    procs.write_state(layout.state("kafka"), dead)
    assert procs.read_state(layout.state("kafka")) == dead
    assert not procs.is_running(dead.pid)
    settings = _other_ports(tmp_path, kafka_port=1)
    assert stack_mod.status_rows(settings, ["kafka"])[0]["pid"] is None
    assert not layout.state("kafka").exists()


def test_select_keeps_the_stack_order():
    assert stack_mod.select(None) == ["kafka", "elasticsearch", "prometheus", "alertmanager"]
    assert stack_mod.select(["alertmanager", "kafka"]) == ["kafka", "alertmanager"]


MAVEN_NOT_FOUND = (
    "[ERROR] Failed to execute goal org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy "
    "(es-zip): Unable to find/resolve artifact.: Failure to find org.elasticsearch.distribution."
    "integ-test-zip:elasticsearch:zip:9.3.0 in https://repo.maven.apache.org/maven2 was cached "
    "in the local repository -> [Help 1]"
)
MAVEN_OFFLINE = (
    "\x1b[0m[ERROR] Failed to execute goal on project local-stack: Could not transfer artifact "
    "org.apache.kafka:kafka_2.13:pom:4.1.99 from/to central (https://repo.maven.apache.org/"
    "maven2): Unknown host repo.maven.apache.org -> [Help 1]\n[ERROR] \n[ERROR] To see the full "
    "stack trace of the errors, re-run Maven with the -e switch.\n"
)


def test_maven_failures_are_told_apart():
    assert fetch.classify_maven_failure(MAVEN_NOT_FOUND) == "not_found"
    assert fetch.classify_maven_failure(MAVEN_OFFLINE) == "network"
    assert fetch.classify_maven_failure("[ERROR] something else") == "other"


def test_maven_cause_keeps_the_reason_without_boilerplate():
    cause = fetch.maven_cause(MAVEN_OFFLINE)
    assert cause.startswith("[ERROR] Failed to execute goal on project local-stack")
    assert cause.endswith("Unknown host repo.maven.apache.org")
    assert "\x1b" not in cause and "-e switch" not in cause


def test_a_maven_mirror_becomes_a_settings_file(tmp_path):
    settings = _other_ports(tmp_path, maven_repository="https://nexus.example/repo?a=1&b=2")
    path = fetch.maven_settings_file(settings, Layout(tmp_path))
    assert path is not None
    text = path.read_text()
    assert "<id>central</id>" in text and "<mirrorOf>*</mirrorOf>" in text
    assert "<url>https://nexus.example/repo?a=1&amp;b=2</url>" in text
    assert fetch.maven_settings_file(_other_ports(tmp_path), Layout(tmp_path)) is None


def test_missing_java_for_elasticsearch_names_the_setting(tmp_path):
    settings = _other_ports(tmp_path, es_java_home=str(tmp_path / "no-jdk"))
    with pytest.raises(StackError, match=r"es_java_home=.*no-jdk has no bin/java"):
        fetch.es_java_home(settings)


def test_too_old_java_for_elasticsearch_is_refused(tmp_path):
    fake = tmp_path / "jdk" / "bin" / "java"
    fake.parent.mkdir(parents=True)
    fake.write_text("#!/bin/sh\necho 'openjdk version \"17.0.15\" 2025-04-15' >&2\n")
    fake.chmod(0o755)
    settings = _other_ports(tmp_path, es_java_home=str(tmp_path / "jdk"))
    with pytest.raises(StackError, match="is Java 17"):
        fetch.es_java_home(settings)


def test_java_versions_are_read_old_and_new_style(tmp_path):
    for text, major in (('java version "1.8.0_392"', 8), ('openjdk version "25" 2025-09-16', 25)):
        fake = tmp_path / f"java{major}"
        fake.write_text(f"#!/bin/sh\necho '{text}' >&2\n")
        fake.chmod(0o755)
        assert fetch.java_major(str(fake)) == major


def test_layout_keeps_everything_under_the_cache_dir(tmp_path):
    layout = Layout(tmp_path)
    assert layout.kafka_libs("4.1.1") == tmp_path / "downloads/kafka-4.1.1/kafka-libs"
    assert layout.es_zip("9.5.4") == tmp_path / "downloads/es/elasticsearch-9.5.4.zip"
    assert layout.log("kafka") == tmp_path / "logs/kafka.log"
    assert layout.state("prometheus") == tmp_path / "run/prometheus.json"
    assert layout.data("alertmanager") == tmp_path / "data/alertmanager"


def test_others_can_enter(tmp_path):
    closed = tmp_path / "closed"
    closed.mkdir()
    closed.chmod(stat.S_IRWXU)
    tmp_path.chmod(0o755)
    open_dir = tmp_path / "open"
    open_dir.mkdir()
    open_dir.chmod(0o755)
    if others_can_enter(tmp_path):
        assert others_can_enter(open_dir / "not-yet-created")
    assert not others_can_enter(closed / "inside")


def test_elasticsearch_files_leave_a_cache_dir_its_user_cannot_enter(tmp_path):
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    private.chmod(0o700)
    tree = Layout(private / "cache", "some-es-user").es_root
    if os.geteuid() == 0:  # only root hands Elasticsearch to another user
        assert tree.parent == Path("/var/lib/some-es-user")
        assert tree.name.startswith("stack-")
        assert tree == Layout(private / "cache", "some-es-user").es_root  # stable
    else:
        assert tree == (private / "cache" / "elasticsearch").resolve()
