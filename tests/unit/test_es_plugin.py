"""The Elasticsearch analysis plugin's build logic: what it compiles against, its digest, its
descriptor, that its named components match the Java sources, and that a build or install
already done is not done again. No JVM is started here (the security tests build, install and
use it on a real node)."""

from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path

import pytest

from pipeline.errors import StackError
from pipeline.stack import es_plugin
from pipeline.stack.layout import Layout

MEMBERS = [
    "elasticsearch-9.5.4/lib/elasticsearch-9.5.4.jar",
    "elasticsearch-9.5.4/lib/elasticsearch-plugin-analysis-api-9.5.4.jar",
    "elasticsearch-9.5.4/lib/elasticsearch-plugin-api-9.5.4.jar",
    "elasticsearch-9.5.4/lib/lucene-analysis-common-10.5.1.jar",
    "elasticsearch-9.5.4/lib/lucene-core-10.5.1.jar",
    "elasticsearch-9.5.4/lib/tools/plugin-cli/lucene-core-9.0.0.jar",
    "elasticsearch-9.5.4/modules/x-pack-core/x-pack-core-9.5.4.jar",
]


def test_compiles_against_exactly_the_api_and_lucene_jars_of_the_zip():
    found = es_plugin.classpath_members(es_plugin.COMPILE_AGAINST, MEMBERS, "9.5.4")
    assert found == [
        "elasticsearch-9.5.4/lib/elasticsearch-plugin-api-9.5.4.jar",
        "elasticsearch-9.5.4/lib/elasticsearch-plugin-analysis-api-9.5.4.jar",
        "elasticsearch-9.5.4/lib/lucene-core-10.5.1.jar",
        "elasticsearch-9.5.4/lib/lucene-analysis-common-10.5.1.jar",
    ]


def test_a_zip_without_a_needed_jar_is_named():
    members = [m for m in MEMBERS if "analysis-common" not in m]
    with pytest.raises(StackError, match=r"lib/lucene-analysis-common-\*\.jar"):
        es_plugin.classpath_members(es_plugin.COMPILE_AGAINST, members, "9.5.4")


def test_the_digest_follows_the_sources_and_the_elasticsearch_version(tmp_path):
    source = tmp_path / "plugin"
    (source / "src").mkdir(parents=True)
    java = source / "src" / "A.java"
    java.write_text("class A {}")
    first = es_plugin.source_digest(source, "9.5.4")
    assert es_plugin.source_digest(source, "9.5.4") == first
    assert es_plugin.source_digest(source, "9.5.3") != first
    java.write_text("class A { }")
    assert es_plugin.source_digest(source, "9.5.4") != first
    java.write_text("class A {}")
    java.rename(source / "src" / "B.java")
    assert es_plugin.source_digest(source, "9.5.4") != first


def test_the_descriptor_is_a_complete_stable_plugin_descriptor():
    template = (es_plugin.SOURCE / es_plugin.DESCRIPTOR).read_text()
    text = es_plugin.render_descriptor(template, "0123abcd", "9.5.4")
    props = dict(
        line.split("=", 1) for line in text.splitlines() if line and not line.startswith("#")
    )
    assert props["name"] == es_plugin.NAME
    assert props["version"] == "0123abcd"
    assert props["elasticsearch.version"] == "9.5.4"
    assert props["java.version"] == es_plugin.JAVA_RELEASE
    assert props["description"]
    assert "classname" not in props  # a stable plugin has no entry class
    assert es_plugin.descriptor_version(text) == "0123abcd"


def test_named_components_match_the_java_sources():
    declared = json.loads((es_plugin.SOURCE / es_plugin.NAMED_COMPONENTS).read_text())
    in_sources: dict[str, dict[str, str]] = {}
    for path in (es_plugin.SOURCE / "src").rglob("*.java"):
        text = path.read_text()
        named = re.search(r'@NamedComponent\("([^"]+)"\)', text)
        if named is None:
            continue
        package = re.search(r"^package ([\w.]+);", text, re.MULTILINE)[1]
        interface = re.search(r"implements (\w+)", text)[1]
        extensible = f"org.elasticsearch.plugin.analysis.{interface}"
        in_sources.setdefault(extensible, {})[named[1]] = f"{package}.{path.stem}"
    assert declared == in_sources
    # what the .security index's `email` analyzer needs beyond the server's own `lowercase`
    assert set(declared["org.elasticsearch.plugin.analysis.TokenizerFactory"]) == {"uax_url_email"}
    assert set(declared["org.elasticsearch.plugin.analysis.TokenFilterFactory"]) == {
        "pattern_capture",
        "unique",
    }


def test_a_java_home_without_javac_is_a_clear_error(tmp_path):
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "java").write_text("")
    with pytest.raises(StackError, match=r"no bin/javac.*DECRYPTSCOPE_ES_JAVA_HOME"):
        es_plugin.javac(str(tmp_path))


def _archive(path: Path, version: str) -> Path:
    with zipfile.ZipFile(path, "w") as out:
        out.writestr(es_plugin.DESCRIPTOR, f"name={es_plugin.NAME}\nversion={version}\n")
    return path


def test_a_build_already_made_is_reused_without_javac(tmp_path):
    layout = Layout(tmp_path / "cache")
    version = es_plugin.source_digest(es_plugin.SOURCE, "9.5.4")
    target = es_plugin.plugin_zip(layout, "9.5.4", version)
    target.parent.mkdir(parents=True)
    _archive(target, version)
    no_jdk = str(tmp_path / "no-jdk")
    assert es_plugin.build(no_jdk, layout, "9.5.4", say=pytest.fail) == target


def test_an_installed_build_is_not_installed_again(tmp_path):
    home = tmp_path / "elasticsearch-9.5.4"  # no bin/elasticsearch-plugin: it must not run
    installed = home / "plugins" / es_plugin.NAME
    installed.mkdir(parents=True)
    (installed / es_plugin.DESCRIPTOR).write_text("name=x\nversion=abc123\n")
    assert not es_plugin.install(home, _archive(tmp_path / "p.zip", "abc123"), "", pytest.fail)


def test_nothing_is_built_for_a_distribution_with_analysis_common(tmp_path):
    home = tmp_path / "elasticsearch-9.5.4"
    (home / "modules" / "analysis-common").mkdir(parents=True)
    layout = Layout(tmp_path / "cache")  # no zip, no JDK: building would fail
    es_plugin.ensure(str(tmp_path / "no-jdk"), layout, home, "9.5.4", say=pytest.fail)
    assert not (home / "plugins").exists()
