"""Shared pytest configuration. The local-stack fixtures (settings, stack, run_prefix,
kafka_bootstrap, es_client, prometheus_url, alertmanager_url) live in stack_plugin.py; importing
them here makes them available to every test."""

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
