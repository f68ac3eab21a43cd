"""Shared pytest configuration. The local-stack fixtures (settings, stack, run_prefix,
kafka_bootstrap, es_client, prometheus_url, alertmanager_url) live in stack_plugin.py; importing
them here makes them available to every test."""

import subprocess

import pytest
from stack_plugin import (  # noqa: F401
    _stack_for_marked_tests,
    alertmanager_url,
    es_client,
    kafka_bootstrap,
    prometheus_url,
    pytest_addoption,
    run_prefix,
    settings,
    stack,
)


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory) -> tuple[str, str]:
    """A throwaway self-signed certificate and key for 127.0.0.1 (syslog over TLS)."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return str(cert), str(key)
