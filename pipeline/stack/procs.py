"""Processes of the local stack: start in their own session, remember them in a state file,
find who holds a port, and stop only what the stack itself started."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from pipeline.errors import StackError

# `ss -Hltnp` line: ... 127.0.0.1:9092 ... users:(("java",pid=123,fd=140))
_SS_USERS = re.compile(r'\("(?P<name>[^"]*)",pid=(?P<pid>\d+)')


@dataclass(frozen=True)
class ProcState:
    """What `stack up` remembers of a server it started (``<cache_dir>/run/<name>.json``)."""

    name: str
    pid: int
    start_ticks: int  # /proc/<pid>/stat start time: tells our process from a recycled pid
    version: str
    address: str
    log: str
    started_at: float


def read_state(path: Path) -> ProcState | None:
    try:
        return ProcState(**json.loads(path.read_text()))
    except (OSError, ValueError, TypeError):
        return None


def write_state(path: Path, state: ProcState) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(state), indent=2))
    tmp.replace(path)


def _stat_fields(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # the command name (field 2) may contain spaces and parentheses: split after the last ')'
    return raw[raw.rindex(")") + 2 :].split()


def start_ticks(pid: int) -> int:
    fields = _stat_fields(pid)
    return int(fields[19]) if fields else 0


def is_running(pid: int, ticks: int | None = None) -> bool:
    """True while ``pid`` lives (zombies do not count) and, if given, started at ``ticks``."""
    fields = _stat_fields(pid)
    if not fields or fields[0] in {"Z", "X"}:
        return False
    return ticks is None or int(fields[19]) == ticks


def group_members(pgid: int) -> list[int]:
    members = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat_fields(int(entry))
            if fields and fields[0] not in {"Z", "X"} and int(fields[2]) == pgid:
                members.append(int(entry))
    return members


def spawn(
    cmd: Sequence[str], log_path: Path, *, env: Mapping[str, str], cwd: Path
) -> subprocess.Popen[bytes]:
    """Start ``cmd`` in a new session (its pid is its process group) logging to ``log_path``."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        log.write(f"\n--- {time.strftime('%Y-%m-%dT%H:%M:%S')} {' '.join(cmd)}\n".encode())
        log.flush()
        try:
            return subprocess.Popen(
                list(cmd),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=dict(env),
                cwd=cwd,
                start_new_session=True,
            )
        except OSError as exc:
            raise StackError(f"cannot start {cmd[0]}: {exc}") from exc


def _reap(pid: int) -> None:
    # A server this very process started is its child: collect it so it is not a zombie.
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def stop_group(pid: int, timeout_s: float = 30.0) -> bool:
    """SIGTERM the process group led by ``pid``, SIGKILL what is left after ``timeout_s``.
    Returns True when nothing of the group is left."""
    for sig, wait_s in ((signal.SIGTERM, timeout_s), (signal.SIGKILL, 10.0)):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, sig)
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            _reap(pid)
            if not group_members(pid):
                return True
            time.sleep(0.2)
    return not group_members(pid)


def port_open(host: str, port: int, timeout_s: float = 0.5) -> bool:
    """True when something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def port_bindable(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def parse_ss(text: str) -> dict[int, list[tuple[int, str]]]:
    """Listening TCP ports -> [(pid, process name)] from `ss -Hltnp` output."""
    owners: dict[int, list[tuple[int, str]]] = {}
    for line in text.splitlines():
        parts = line.split()
        local = next((p for p in parts if re.search(r":\d+$", p)), None)
        if local is None:
            continue
        port = int(local.rsplit(":", 1)[1])
        users = [(int(m["pid"]), m["name"]) for m in _SS_USERS.finditer(line)]
        owners.setdefault(port, []).extend(u for u in users if u not in owners[port])
    return owners


def port_owners(port: int) -> list[tuple[int, str]]:
    try:
        out = subprocess.run(
            ["ss", "-Hltnp"], capture_output=True, text=True, timeout=10, check=False
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return parse_ss(out).get(port, [])


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    except OSError:
        return ""


def log_tail(path: Path, lines: int = 25) -> str:
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - 64 * 1024))
            text = fh.read().decode("utf-8", "replace")
    except OSError:
        return f"(no log at {path})"
    return "\n".join(text.splitlines()[-lines:])
