"""Pytest fixtures for tests that talk to the real local stack (Kafka, Elasticsearch,
Prometheus, Alertmanager started by `decryptscope stack up`).

Tests marked ``integration``, ``e2e`` or ``faults`` get the stack brought up once per session
(whatever is already serving is used as it is; only what is down is started). A stack this
session did not start is never stopped; one it started keeps running after the session (the next
run is faster) unless pytest runs with ``--stack-down``. Topics, indices and index/component
templates whose names start with ``run_prefix`` are deleted at the end of the session.

Fixtures: ``settings``, ``stack``, ``run_prefix``, ``kafka_bootstrap``, ``es_client``,
``prometheus_url``, ``alertmanager_url``. Helpers for a second, private stack on other ports:
``private_stack_settings`` and ``private_stack``."""

from __future__ import annotations

import contextlib
import dataclasses
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from pipeline import stack as stack_mod
from pipeline.errors import StackError
from pipeline.settings import Settings, load_settings
from pipeline.stack import components
from pipeline.stack.layout import COMPONENTS

STACK_MARKERS = ("integration", "e2e", "faults")
_DEFAULTS = Settings()


@dataclass(frozen=True)
class StackInfo:
    settings: Settings
    started: tuple[str, ...]  # components this session started


def point_clients_at_stack(settings: Settings) -> Settings:
    """Client settings left at their defaults follow the stack's ports (so a stack on other
    ports via DECRYPTSCOPE_KAFKA_PORT etc. is what the tests talk to)."""
    changes = {}
    host = settings.stack_host
    if settings.kafka_bootstrap == _DEFAULTS.kafka_bootstrap:
        changes["kafka_bootstrap"] = f"{host}:{settings.kafka_port}"
    if settings.es_url == _DEFAULTS.es_url:
        changes["es_url"] = f"http://{host}:{settings.es_port}"
    return dataclasses.replace(settings, **changes) if changes else settings


def private_stack_settings(base: Settings, cache_dir: Path, port_offset: int) -> Settings:
    """Settings for a second stack: every stack port shifted by ``port_offset`` and its own
    cache dir (its first fetch copies from Maven's local repository, ~/.m2, so it is quick)."""
    ports = {
        name: getattr(base, name) + port_offset
        for port_names in components.PORTS.values()
        for name in port_names
    }
    shifted = dataclasses.replace(base, cache_dir=cache_dir, **ports)
    host = shifted.stack_host
    return dataclasses.replace(
        shifted,
        kafka_bootstrap=f"{host}:{shifted.kafka_port}",
        es_url=f"http://{host}:{shifted.es_port}",
    )


@contextlib.contextmanager
def private_stack(settings: Settings, names: tuple[str, ...] = COMPONENTS) -> Iterator[Settings]:
    """Run a stack of its own for the duration of the block, then stop it and remove its data
    (for tests that kill servers on purpose)."""
    try:
        stack_mod.up(settings, list(names), say=lambda _m: None)
        yield settings
    finally:
        stack_mod.down(settings, list(names), purge=True, say=lambda _m: None)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--stack-down",
        action="store_true",
        help="stop, at the end of the session, the stack servers this session started",
    )


@pytest.fixture(scope="session")
def settings() -> Settings:
    """Settings (environment and DECRYPTSCOPE_CONFIG as usual) with clients pointed at the
    local stack. Does not start anything by itself."""
    return point_clients_at_stack(load_settings())


@pytest.fixture(scope="session")
def run_prefix() -> str:
    """Unique per test run; prefix every topic, index and template a test creates with it."""
    return f"t{time.strftime('%H%M%S')}{secrets.token_hex(2)}"


def _cleanup(settings: Settings, prefix: str) -> None:
    from elasticsearch import Elasticsearch
    from kafka import KafkaAdminClient

    with contextlib.suppress(Exception):
        es = Elasticsearch(settings.es_url, request_timeout=30)
        es.options(ignore_status=(404,)).indices.delete(
            index=f"{prefix}*", expand_wildcards="all", ignore_unavailable=True
        )
        es.options(ignore_status=(404,)).indices.delete_index_template(name=f"{prefix}*")
        es.options(ignore_status=(404,)).cluster.delete_component_template(name=f"{prefix}*")
        es.close()
    with contextlib.suppress(Exception):
        admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
        ours = [t for t in admin.list_topics() if t.startswith(prefix)]
        if ours:
            admin.delete_topics(ours)
        admin.close()


@pytest.fixture(scope="session")
def stack(
    settings: Settings, run_prefix: str, request: pytest.FixtureRequest
) -> Iterator[StackInfo]:
    """The local stack, serving. Starts only what is down."""
    down = [name for name in COMPONENTS if not components.PROBES[name](settings).ok]
    if down:
        try:
            rows = stack_mod.up(settings, down)
        except StackError as exc:
            pytest.fail(f"the local stack is not up and could not be started: {exc}", pytrace=False)
        if not all(row["healthy"] for row in rows):
            table = stack_mod.format_table(rows)
            pytest.fail(f"the local stack is not healthy:\n{table}", pytrace=False)
    # Rules and routes in deploy/ may have changed since the stack started.
    try:
        stack_mod.refresh(settings, say=lambda _m: None)
    except StackError as exc:
        pytest.fail(str(exc), pytrace=False)
    info = StackInfo(settings, tuple(down))
    yield info
    _cleanup(settings, run_prefix)
    if info.started and request.config.getoption("--stack-down"):
        stack_mod.down(settings, list(info.started), purge=False)


@pytest.fixture(autouse=True)
def _stack_for_marked_tests(request: pytest.FixtureRequest) -> None:
    if any(request.node.get_closest_marker(m) for m in STACK_MARKERS):
        request.getfixturevalue("stack")


@pytest.fixture(scope="session")
def kafka_bootstrap(stack: StackInfo) -> str:
    return stack.settings.kafka_bootstrap


@pytest.fixture(scope="session")
def es_client(stack: StackInfo) -> Iterator[object]:
    from elasticsearch import Elasticsearch

    client = Elasticsearch(stack.settings.es_url, request_timeout=60)
    yield client
    client.close()


@pytest.fixture(scope="session")
def prometheus_url(stack: StackInfo) -> str:
    return components.address("prometheus", stack.settings)


@pytest.fixture(scope="session")
def alertmanager_url(stack: StackInfo) -> str:
    return components.address("alertmanager", stack.settings)
