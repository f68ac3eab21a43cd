"""The local stack: a real Kafka broker, Elasticsearch node, Prometheus and Alertmanager on
this machine, without Docker (`decryptscope stack up|down|status|fetch`).

Submodules: ``layout`` (where files go), ``fetch`` (Maven Central, Debian, Java checks),
``es_plugin`` (the analysis plugin Elasticsearch's `.security` index needs), ``config`` (pure
rendering), ``components`` (per-server commands), ``procs`` (pids, ports), ``health``
(readiness probes)."""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import os
import pwd
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from pipeline.errors import StackError
from pipeline.settings import Settings
from pipeline.stack import components, fetch, procs
from pipeline.stack.layout import COMPONENTS, Layout

Say = Callable[[str], None]

# Debian's packages start their own service on the default ports; ss shows at most 15
# characters of a process name.
_DEBIAN_SERVICES = {"prometheus": "prometheus", "prometheus-aler": "prometheus-alertmanager"}


def say(message: str) -> None:
    print(f"stack: {message}", file=sys.stderr, flush=True)


def layout_for(settings: Settings) -> Layout:
    return Layout(settings.cache_dir, settings.es_user)


@contextlib.contextmanager
def _locked(layout: Layout) -> Iterator[None]:
    """One `up` or `down` at a time per cache dir (tests of several sessions may race)."""
    layout.cache_dir.mkdir(parents=True, exist_ok=True)
    with open(layout.cache_dir / "stack.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def select(only: Iterable[str] | None) -> list[str]:
    chosen = set(only or COMPONENTS)
    return [name for name in COMPONENTS if name in chosen]


# --- ports ----------------------------------------------------------------------------------
def _debian_service(pid: int, name: str) -> str | None:
    """The init script that owns ``pid`` when it is Debian's packaged service."""
    service = _DEBIAN_SERVICES.get(name)
    if service is None or not Path(f"/etc/init.d/{service}").exists():
        return None
    try:
        owner = Path(f"/proc/{pid}").stat().st_uid
        packaged = pwd.getpwnam("prometheus").pw_uid
    except (OSError, KeyError):
        return None
    return service if owner == packaged else None


def describe_owners(owners: Sequence[tuple[int, str]]) -> str:
    if not owners:
        return "another process"
    return ", ".join(f"pid {pid} ({name}: {procs.cmdline(pid)[:100]})" for pid, name in owners)


def port_conflict_message(name: str, setting: str, host: str, port: int, who: str) -> str:
    return (
        f"port {host}:{port} ({setting}) is already taken by {who}, so {name} cannot start. "
        f"Fix: stop that process, or run the stack on another port with "
        f"DECRYPTSCOPE_{setting.upper()}=<port>"
    )


def claim_ports(settings: Settings, names: Sequence[str], say: Say) -> None:
    """Make sure every port of ``names`` is free; stop Debian's own Prometheus/Alertmanager
    service when it sits on one (as root), else fail naming the port and its owner."""
    host = settings.stack_host
    for name in names:
        for setting in components.PORTS[name]:
            port = getattr(settings, setting)
            if procs.port_bindable(host, port):
                continue
            owners = procs.port_owners(port)
            services = sorted({s for pid, pname in owners if (s := _debian_service(pid, pname))})
            if services and os.geteuid() == 0:
                for service in services:
                    say(f"stopping Debian's {service} service, which holds port {port}")
                    subprocess.run(
                        [f"/etc/init.d/{service}", "stop"], capture_output=True, check=False
                    )
                deadline = time.monotonic() + 15
                while time.monotonic() < deadline and not procs.port_bindable(host, port):
                    time.sleep(0.3)
                if procs.port_bindable(host, port):
                    continue
            who = describe_owners(owners)
            if services:
                stop = " and ".join(f"`service {service} stop`" for service in services)
                who += f", Debian's packaged service (as root: {stop})"
            raise StackError(port_conflict_message(name, setting, host, port, who))


# --- up -------------------------------------------------------------------------------------
def _running_state(layout: Layout, name: str) -> procs.ProcState | None:
    state = procs.read_state(layout.state(name))
    if state and procs.is_running(state.pid, state.start_ticks):
        return state
    layout.state(name).unlink(missing_ok=True)
    return None


def _failure(name: str, why: str, log: Path) -> StackError:
    return StackError(
        f"{name} {why}. Its log ({log}) ends with:\n{procs.log_tail(log)}\n"
        f"Fix the cause above, then run `decryptscope stack up` again."
    )


def _wait_ready(
    settings: Settings, started: dict[str, procs.ProcState], layout: Layout, say: Say
) -> None:
    begin = time.monotonic()
    deadline = begin + settings.stack_start_timeout_s
    pending = dict(started)
    while pending:
        for name, state in list(pending.items()):
            if not procs.is_running(state.pid, state.start_ticks):
                raise _failure(name, "stopped while starting", layout.log(name))
            checked = components.PROBES[name](settings)
            if checked.ok:
                if checked.version and checked.version != state.version:
                    procs.write_state(
                        layout.state(name), dataclasses.replace(state, version=checked.version)
                    )
                say(f"{name} ready at {state.address} ({time.monotonic() - begin:.0f}s)")
                del pending[name]
        if pending and time.monotonic() > deadline:
            name = next(iter(pending))
            raise _failure(
                name,
                f"did not become ready within {settings.stack_start_timeout_s:.0f}s "
                "(stack_start_timeout_s)",
                layout.log(name),
            )
        if pending:
            time.sleep(1.0)


def up(settings: Settings, names: Sequence[str], say: Say = say) -> list[dict[str, Any]]:
    layout = layout_for(settings)
    with _locked(layout):
        _up(settings, layout, names, say)
    return status_rows(settings, names)


def _up(settings: Settings, layout: Layout, names: Sequence[str], say: Say) -> None:
    to_start = []
    for name in names:
        state = _running_state(layout, name)
        if state:
            say(f"{name} already runs (pid {state.pid}, {state.address})")
            if components.reload(name, settings, layout):
                say(f"{name} reloaded its configuration from deploy/")
        else:
            to_start.append(name)
    if to_start:
        claim_ports(settings, to_start, say)
        manifest = fetch.fetch(settings, layout, to_start, say)
        started: dict[str, procs.ProcState] = {}
        try:
            for name in to_start:
                launch = components.PREPARE[name](settings, layout, manifest)
                proc = procs.spawn(
                    launch.cmd,
                    layout.log(name),
                    env={**os.environ, **launch.env},
                    cwd=launch.cwd,
                )
                state = procs.ProcState(
                    name=name,
                    pid=proc.pid,
                    start_ticks=procs.start_ticks(proc.pid),
                    version=launch.version,
                    address=components.address(name, settings),
                    log=str(layout.log(name)),
                    started_at=time.time(),
                )
                procs.write_state(layout.state(name), state)
                started[name] = state
                say(f"started {name} {launch.version} (pid {proc.pid}), log {layout.log(name)}")
            _wait_ready(settings, started, layout, say)
        except BaseException:
            # Leave nothing half-started behind.
            for name, state in started.items():
                procs.stop_group(state.pid, timeout_s=15)
                layout.state(name).unlink(missing_ok=True)
            raise


def refresh(settings: Settings, say: Say = say) -> list[str]:
    """Reload Prometheus and Alertmanager (rules and routes from deploy/) when this stack runs
    them; returns the names reloaded."""
    layout = layout_for(settings)
    done = []
    with _locked(layout):
        for name in ("prometheus", "alertmanager"):
            if _running_state(layout, name) and components.reload(name, settings, layout):
                say(f"{name} reloaded its configuration from deploy/")
                done.append(name)
    return done


# --- down -----------------------------------------------------------------------------------
def _purge(layout: Layout, name: str) -> bool:
    paths = [layout.data(name), layout.config(name), layout.log(name)]
    if name == "elasticsearch":
        paths += [layout.es_root, layout.es_link]
    removed = False
    for path in paths:
        if path.is_symlink() or path.is_file():
            path.unlink()
        elif path.exists():
            shutil.rmtree(path)
        else:
            continue
        removed = True
    return removed


def down(settings: Settings, names: Sequence[str], purge: bool, say: Say = say) -> None:
    layout = layout_for(settings)
    with _locked(layout):
        _down(settings, layout, names, purge, say)


def _down(settings: Settings, layout: Layout, names: Sequence[str], purge: bool, say: Say) -> None:
    stuck = []
    for name in reversed(names):
        state = _running_state(layout, name)
        main_port = getattr(settings, components.PORTS[name][0])
        if state is None:
            say(f"{name}: not running (nothing this stack started)")
            if purge and procs.port_open(settings.stack_host, main_port):
                say(f"{name}: something else serves port {main_port}; its data is kept")
                continue
        elif procs.stop_group(state.pid):
            say(f"stopped {name} (pid {state.pid})")
        else:
            stuck.append(f"{name} (pid {state.pid})")
            continue
        layout.state(name).unlink(missing_ok=True)
        if purge and _purge(layout, name):
            say(f"removed {name} data")
    if stuck:
        raise StackError(f"could not stop {', '.join(stuck)}; kill them by pid and retry")


# --- status ---------------------------------------------------------------------------------
def status_rows(settings: Settings, names: Sequence[str]) -> list[dict[str, Any]]:
    layout = layout_for(settings)
    manifest = fetch.read_manifest(layout)
    rows = []
    for name in names:
        state = _running_state(layout, name)
        checked = components.PROBES[name](settings)
        version = (
            checked.version
            or (state.version if state else "")
            or {
                "kafka": manifest.get("kafka_version", ""),
                "elasticsearch": manifest.get("es_version", ""),
            }.get(name, "")
        )
        if checked.ok:
            health = f"up ({checked.detail})" if state else "up (not started by this stack)"
        else:
            health = "starting or failing" if state else "down"
        rows.append(
            {
                "component": name,
                "version": version,
                "address": components.address(name, settings),
                "pid": state.pid if state else None,
                "healthy": checked.ok,
                "health": health,
                "log": str(layout.log(name)),
            }
        )
    return rows
