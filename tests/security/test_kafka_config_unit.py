"""Kafka client configuration from Settings, without a broker: the options each client gets,
refused configurations naming the setting, and errors that never show the password."""

from __future__ import annotations

import ssl

import pytest

from pipeline import kafka_config
from pipeline.errors import ConfigError, SinkError
from pipeline.settings import load_settings

SECRET = "pw-never-shown-8841"


def sasl(**changes):
    values = {
        "kafka_security_protocol": "SASL_SSL",
        "kafka_sasl_username": "pipeline",
        "kafka_sasl_password": SECRET,
    }
    return load_settings(env={}, **{**values, **changes})


def test_plaintext_has_no_security_options() -> None:
    s = load_settings(env={})
    assert kafka_config.security_kwargs(s) == {"security_protocol": "PLAINTEXT"}
    assert kafka_config.faust_broker_credentials(s) is None


def test_sasl_ssl_options_for_kafka_python_and_faust() -> None:
    s = sasl()
    options = kafka_config.producer_kwargs(s)
    assert options["security_protocol"] == "SASL_SSL"
    assert options["sasl_mechanism"] == "SCRAM-SHA-512"
    assert options["sasl_plain_username"] == "pipeline"
    assert options["sasl_plain_password"] == SECRET
    assert isinstance(options["ssl_context"], ssl.SSLContext)
    assert options["enable_idempotence"] is True and options["acks"] == "all"
    credentials = kafka_config.faust_broker_credentials(s)
    assert credentials.username == "pipeline"
    assert credentials.ssl_context is not None
    plain = kafka_config.faust_broker_credentials(sasl(kafka_security_protocol="SASL_PLAINTEXT"))
    assert plain.ssl_context is None


def test_the_password_can_come_from_a_file(tmp_path) -> None:
    secret = tmp_path / "kafka-password"
    secret.write_text(SECRET + "\n")
    s = load_settings(
        env={"DECRYPTSCOPE_KAFKA_SASL_PASSWORD_FILE": str(secret)},
        kafka_security_protocol="SASL_PLAINTEXT",
        kafka_sasl_username="pipeline",
    )
    assert kafka_config.security_kwargs(s)["sasl_plain_password"] == SECRET
    assert SECRET not in repr(s)


@pytest.mark.parametrize(
    ("changes", "setting"),
    [
        ({"kafka_security_protocol": "SASL"}, "kafka_security_protocol"),
        ({"kafka_sasl_mechanism": "GSSAPI"}, "kafka_sasl_mechanism"),
        ({"kafka_sasl_password": ""}, "kafka_sasl_password"),
        ({"kafka_ssl_cafile": "/nonexistent/ca.pem"}, "kafka_ssl_cafile"),
    ],
)
def test_configurations_that_cannot_work_name_the_setting(changes, setting) -> None:
    with pytest.raises(ConfigError, match=setting):
        kafka_config.security_kwargs(sasl(**changes))


def test_errors_say_what_to_check_and_hide_the_password() -> None:
    s = sasl()
    auth = kafka_config.kafka_error(
        RuntimeError(f"SaslAuthenticationFailed: bad password {SECRET}"), s, "ingest"
    )
    assert isinstance(auth, kafka_config.KafkaAuthError)
    assert "kafka_sasl_password" in str(auth) and SECRET not in str(auth)
    tls = kafka_config.kafka_error(ssl.SSLError("CERTIFICATE_VERIFY_FAILED"), s, "worker")
    assert "kafka_ssl_cafile" in str(tls)
    other = kafka_config.kafka_error(ConnectionRefusedError("refused"), s, "setup")
    assert type(other) is SinkError and "kafka_bootstrap" in str(other)


def test_an_unreachable_broker_is_a_sink_error_at_once() -> None:
    s = load_settings(env={}, kafka_bootstrap="127.0.0.1:1")
    with pytest.raises(SinkError, match="kafka_bootstrap"):
        kafka_config.preflight(s, "ingest", timeout_s=5)


def test_a_malformed_bootstrap_is_a_config_error() -> None:
    s = load_settings(env={}, kafka_bootstrap="no-port-here")
    with pytest.raises(ConfigError, match="kafka_bootstrap"):
        kafka_config.preflight(s, "ingest")


def test_a_client_certificate_is_presented_when_set(tmp_path) -> None:
    import certs

    ca = certs.authority(tmp_path, "unit-ca")
    client = certs.issue(ca, tmp_path, "pipeline-client", server=False, key_password=SECRET)
    s = load_settings(
        env={},
        kafka_security_protocol="SSL",
        kafka_ssl_cafile=str(ca.cert_path),
        kafka_ssl_certfile=str(client.cert),
        kafka_ssl_keyfile=str(client.key),
        kafka_ssl_key_password=SECRET,
    )
    context = kafka_config.security_kwargs(s)["ssl_context"]
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert kafka_config.faust_broker_credentials(s).context is not None
    assert SECRET not in repr(s)


@pytest.mark.parametrize(
    ("changes", "setting"),
    [
        ({"kafka_ssl_key_password": "not-it"}, "kafka_ssl_key_password"),
        ({"kafka_ssl_certfile": ""}, "kafka_ssl_certfile"),
        ({"kafka_ssl_keyfile": "/nonexistent/client.key"}, "kafka_ssl_keyfile"),
    ],
)
def test_a_client_certificate_that_cannot_load_names_the_setting(
    tmp_path, changes, setting
) -> None:
    import certs

    ca = certs.authority(tmp_path, "unit-ca")
    client = certs.issue(ca, tmp_path, "pipeline-client", server=False, key_password=SECRET)
    values = {
        "kafka_security_protocol": "SSL",
        "kafka_ssl_cafile": str(ca.cert_path),
        "kafka_ssl_certfile": str(client.cert),
        "kafka_ssl_keyfile": str(client.key),
        "kafka_ssl_key_password": SECRET,
    }
    s = load_settings(env={}, **{**values, **changes})
    with pytest.raises(ConfigError, match=setting) as raised:
        kafka_config.security_kwargs(s)
    assert SECRET not in str(raised.value) and "not-it" not in str(raised.value)
