"""The fault scenarios' own stack: a Kafka broker and an Elasticsearch node on a free block of
ports with their own cache dir, started once per session and removed at the end. The shared
stack on the default ports is never touched: these tests kill and stop servers on purpose."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import FAULT_COMPONENTS, fault_stack_settings
from stack_plugin import private_stack

from pipeline import stack as stack_mod
from pipeline.settings import Settings


@pytest.fixture(scope="session")
def fault_stack(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    own = fault_stack_settings(settings, tmp_path_factory.mktemp("fault-stack"))
    with private_stack(own, FAULT_COMPONENTS) as running:
        yield running


@pytest.fixture
def running_fault_stack(fault_stack: Settings) -> Settings:
    """The fault stack with both servers serving (a scenario that failed half-way may have
    left one stopped)."""
    stack_mod.up(fault_stack, list(FAULT_COMPONENTS), say=lambda _m: None)
    return fault_stack
