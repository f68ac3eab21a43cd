"""The pipeline's services as child processes: ``decryptscope ingest`` and ``decryptscope
worker`` started with given settings (in their environment), watched and stopped. The demo runs
the pipeline this way, and so do the end-to-end tests and benchmarks."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pipeline.errors import StackError
from pipeline.settings import ENV_PREFIX, Settings


def settings_env(settings: Settings, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment that gives a subprocess exactly these settings (secrets included: the
    environment of a child process is not a log)."""
    env = dict(os.environ if base is None else base)
    for f in dataclasses.fields(settings):
        value = getattr(settings, f.name)
        if isinstance(value, tuple):
            value = ",".join(value)
        env[f"{ENV_PREFIX}{f.name.upper()}"] = str(value)
    env.pop(f"{ENV_PREFIX}CONFIG", None)
    return env


def spawn(args: list[str], settings: Settings, log: Path) -> subprocess.Popen:
    """``python -m pipeline <args>`` with ``settings`` in its environment, in a session of its
    own (signals reach it alone), output appended to ``log``."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "pipeline", *args],
            env=settings_env(settings),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


class Services:
    """``decryptscope ingest`` and ``decryptscope worker`` as child processes."""

    def __init__(self, settings: Settings, log_dir: Path, *, workers: int = 1) -> None:
        self.settings = settings
        self.log_dir = log_dir
        self.workers = workers  # one consumer group; each worker has its own web port
        self.procs: dict[str, subprocess.Popen] = {}

    def _spawn(self, name: str, args: list[str], settings: Settings) -> None:
        self.procs[name] = spawn(args, settings, self.log_dir / f"{name}.log")

    def start(self, *, ingest: bool = True, worker: bool = True) -> Services:
        if ingest:
            self._spawn("ingest", ["ingest"], self.settings)
        if worker:
            for i in range(self.workers):
                s = dataclasses.replace(self.settings, web_port=self.settings.web_port + i)
                self._spawn(f"worker{i}", ["worker"], s)
        if ingest:
            self.wait_ingest()
        return self

    def wait_ingest(self, timeout: float = 60.0) -> None:
        s = self.settings
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            with (
                contextlib.suppress(OSError),
                socket.create_connection((s.syslog_bind, s.syslog_tcp_port), timeout=1),
            ):
                return
            time.sleep(0.2)
        raise StackError(f"ingest did not listen on {s.syslog_tcp_port} within {timeout:.0f}s")

    def check_alive(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                log = self.log_dir / f"{name}.log"
                tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
                raise StackError(f"{name} exited with {proc.returncode}:\n{tail}")

    def pid(self, name: str) -> int:
        return self.procs[name].pid

    def stop(self, timeout: float = 60.0) -> dict[str, int | None]:
        """SIGTERM (graceful: ingest flushes, the worker commits), SIGKILL after ``timeout``."""
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        codes: dict[str, int | None] = {}
        for name, proc in self.procs.items():
            try:
                codes[name] = proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                codes[name] = proc.wait(10)
        return codes

    def __enter__(self) -> Services:
        return self

    def __exit__(self, *_exc: Any) -> None:
        self.stop()
