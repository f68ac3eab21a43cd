"""Settings: defaults, TOML file, environment, precedence, secrets and refused values."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pipeline.errors import ConfigError
from pipeline.settings import Settings, load_settings


def _toml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "decryptscope.toml"
    path.write_text(text)
    return path


def test_defaults_without_file_or_environment():
    settings = load_settings(env={})
    assert settings == Settings()
    assert settings.kafka_port == 9092 and settings.kafka_controller_port == 9095
    assert settings.alertmanager_port == 9093 and settings.prometheus_port == 9090
    assert settings.cache_dir == Path.home() / ".cache" / "decryptscope"


def test_environment_beats_file_beats_defaults(tmp_path):
    config = _toml(tmp_path, 'kafka_port = 19092\nes_port = 19200\ntopic_raw = "from.file"\n')
    env = {"DECRYPTSCOPE_KAFKA_PORT": "29092", "DECRYPTSCOPE_CONFIG": str(config)}
    settings = load_settings(env=env)
    assert settings.kafka_port == 29092  # environment
    assert settings.es_port == 19200  # file
    assert settings.topic_raw == "from.file"
    assert settings.prometheus_port == 9090  # default


def test_explicit_file_and_overrides_beat_the_environment(tmp_path):
    config = _toml(tmp_path, "kafka_port = 19092\n")
    settings = load_settings(
        config, env={"DECRYPTSCOPE_ES_PORT": "29200"}, es_port=39200, batch_size=None
    )
    assert settings.kafka_port == 19092
    assert settings.es_port == 39200
    assert settings.batch_size == Settings().batch_size  # None means "not given"


def test_toml_tables_are_joined_with_underscores(tmp_path):
    config = _toml(tmp_path, "[kafka]\nport = 19092\ncontroller_port = 19095\n[es]\nheap = '1g'\n")
    settings = load_settings(config, env={})
    assert (settings.kafka_port, settings.kafka_controller_port) == (19092, 19095)
    assert settings.es_heap == "1g"


def test_environment_values_are_typed():
    env = {
        "DECRYPTSCOPE_SCRAPE_TARGETS": "127.0.0.1:7000, 127.0.0.1:7001,",
        "DECRYPTSCOPE_ES_VERSIONS": "9.5.4,9.4.6",
        "DECRYPTSCOPE_ALERT_RATIO": "2.5",
        "DECRYPTSCOPE_CACHE_DIR": "~/elsewhere",
    }
    settings = load_settings(env=env)
    assert settings.scrape_targets == ("127.0.0.1:7000", "127.0.0.1:7001")
    assert settings.es_versions == ("9.5.4", "9.4.6")
    assert settings.alert_ratio == 2.5
    assert settings.cache_dir == Path.home() / "elsewhere"


def test_es_java_home_from_elasticsearchs_own_variable(tmp_path):
    assert load_settings(env={"ES_JAVA_HOME": "/opt/jdk21"}).es_java_home == "/opt/jdk21"
    both = {"ES_JAVA_HOME": "/opt/jdk21", "DECRYPTSCOPE_ES_JAVA_HOME": "/opt/jdk25"}
    assert load_settings(env=both).es_java_home == "/opt/jdk25"
    config = _toml(tmp_path, 'es_java_home = "/opt/from-file"\n')
    assert load_settings(config, env={"ES_JAVA_HOME": "/opt/jdk21"}).es_java_home == (
        "/opt/from-file"
    )


def test_secrets_are_masked_in_repr_and_public_dict():
    settings = load_settings(
        env={"DECRYPTSCOPE_ES_PASSWORD": "hunter2", "DECRYPTSCOPE_KAFKA_SASL_PASSWORD": "s3cret"}
    )
    assert settings.es_password == "hunter2"
    text = repr(settings)
    assert "hunter2" not in text and "s3cret" not in text
    assert "es_password='***'" in text
    public = settings.public_dict()
    assert public["es_password"] == "***" and public["kafka_sasl_password"] == "***"
    assert public["es_api_key"] == ""  # unset secrets stay visibly unset
    assert "hunter2" not in str(public)


def test_secrets_can_come_from_files(tmp_path):
    secret = tmp_path / "pw"
    secret.write_text("from-a-file\n")
    settings = load_settings(env={"DECRYPTSCOPE_ES_PASSWORD_FILE": str(secret)})
    assert settings.es_password == "from-a-file"
    with pytest.raises(ConfigError, match="es_password_file"):
        load_settings(env={"DECRYPTSCOPE_ES_PASSWORD_FILE": str(tmp_path / "missing")})


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"DECRYPTSCOPE_KAFKA_PORT": "70000"}, "kafka_port"),
        ({"DECRYPTSCOPE_ES_PORT": "0"}, "es_port"),
        ({"DECRYPTSCOPE_PROMETHEUS_PORT": "ninety"}, "prometheus_port"),
        ({"DECRYPTSCOPE_BATCH_SIZE": "-1"}, "batch_size"),
        ({"DECRYPTSCOPE_ALERT_EWMA_ALPHA": "1.5"}, "alert_ewma_alpha"),
        ({"DECRYPTSCOPE_ALERT_RATIO": "lots"}, "alert_ratio"),
        ({"DECRYPTSCOPE_NO_SUCH_THING": "1"}, "no_such_thing"),
        ({"DECRYPTSCOPE_WORKER_SESSION_TIMEOUT_S": "2"}, "worker_session_timeout_s"),
        ({"DECRYPTSCOPE_TOPIC_EVENTS_OCSF": "panos events"}, "topic_events_ocsf"),
        ({"DECRYPTSCOPE_TOPIC_EVENTS_OCSF": "x" * 250}, "topic_events_ocsf"),
        ({"DECRYPTSCOPE_TOPIC_DLQ": ".."}, "topic_dlq"),
        ({"DECRYPTSCOPE_OCSF_ENABLED": "maybe"}, "ocsf_enabled"),
        (
            {"DECRYPTSCOPE_OCSF_ENABLED": "1", "DECRYPTSCOPE_TOPIC_EVENTS_OCSF": "panos.events"},
            "topic_events_ocsf",
        ),
    ],
)
def test_bad_values_are_refused_naming_the_setting(env, named):
    with pytest.raises(ConfigError, match=named):
        load_settings(env=env)


def test_ocsf_topic_defaults_and_switch(tmp_path):
    settings = load_settings(env={})
    assert (settings.ocsf_enabled, settings.topic_events_ocsf) == (False, "panos.events.ocsf")
    config = _toml(tmp_path, '[ocsf]\nenabled = true\n[topic]\nevents_ocsf = "siem.ocsf"\n')
    settings = load_settings(config, env={})
    assert (settings.ocsf_enabled, settings.topic_events_ocsf) == (True, "siem.ocsf")
    # The same name as the ECS topic is fine while the OCSF output is off (it is not used).
    assert not load_settings(env={"DECRYPTSCOPE_TOPIC_EVENTS_OCSF": "panos.events"}).ocsf_enabled


def test_a_broken_config_file_is_refused_naming_the_file(tmp_path):
    config = _toml(tmp_path, "kafka_port = [unclosed\n")
    with pytest.raises(ConfigError, match=re.escape(str(config))):
        load_settings(config, env={})
    with pytest.raises(ConfigError, match=r"nowhere\.toml"):
        load_settings(tmp_path / "nowhere.toml", env={})


def test_settings_are_frozen():
    settings = Settings()
    with pytest.raises(AttributeError):
        settings.kafka_port = 1  # type: ignore[misc]
