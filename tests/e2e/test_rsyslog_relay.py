"""The rsyslog relay of ``deploy/rsyslog/`` with Debian's rsyslogd in front of the real
pipeline: lines in over UDP and TCP -> rsyslog -> ingest (TCP with octet counting, or TLS) ->
Kafka -> worker -> Elasticsearch. Every line must be indexed exactly once, with its text
unchanged, also when the ingest is stopped and restarted while lines keep coming (rsyslog's
action queue holds them meanwhile).

rsyslogd runs in the foreground as a child of the test (``rsyslogd -n -f <conf> -i <pidfile>``)
on free loopback ports, with its queue files in the test's own directory; it loads no input
besides the relay's, so it never touches a system rsyslog or /dev/log."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from pipeline.commands import replay
from pipeline.commands.setup import setup
from pipeline.panos.layouts import layouts
from pipeline.resources import DEPLOY
from tests.harness import SAMPLE, Services, free_port, isolated_settings

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

RELAY_CONF = DEPLOY / "rsyslog" / "decryptscope-relay.conf"


# --- numbered lines -------------------------------------------------------------------------
def _traffic_fields() -> list[bytes]:
    for line in replay.read_lines([SAMPLE]):
        if b",TRAFFIC," in line:
            # a session that ended normally: nothing waits to be joined with it
            return line.replace(b",decrypt-error,", b",tcp-fin,").split(b",")
    raise AssertionError("no TRAFFIC line in the demo sample")


_FIELDS = _traffic_fields()
_NAMES = layouts()["TRAFFIC"].names
_SESSION, _SEQNO = _NAMES.index("sessionid"), _NAMES.index("seqno")


def numbered(first: int, stop: int, run: int) -> dict[int, bytes]:
    """Valid TRAFFIC end logs as a firewall sends them, keyed by their sequence number (the
    session id is unique too)."""
    out = {}
    for n in range(first, stop):
        seqno = run * 10_000_000 + n
        fields = list(_FIELDS)
        fields[_SESSION] = b"%d" % (n + 1)
        fields[_SEQNO] = b"%d" % seqno
        out[seqno] = b",".join(fields)
    return out


# --- rsyslogd as a child process -----------------------------------------------------------
class Relay:
    """``rsyslogd -n`` with the relay configuration, its environment and its own work dir."""

    def __init__(self, folder: Path, env: dict[str, str]) -> None:
        self.folder = folder
        self.env = env
        self.udp_port = int(env["DSRELAY_UDP_PORT"])
        self.tcp_port = int(env["DSRELAY_TCP_PORT"])
        self.log = folder / "rsyslogd.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> Relay:
        rsyslogd = shutil.which("rsyslogd") or "/usr/sbin/rsyslogd"
        assert os.path.exists(rsyslogd), "rsyslogd missing: apt-get install rsyslog rsyslog-gnutls"
        (self.folder / "queue").mkdir(parents=True, exist_ok=True)
        conf = self.folder / "rsyslog.conf"
        conf.write_text(
            f'global(workDirectory="{self.folder / "queue"}")\ninclude(file="{RELAY_CONF}")\n'
        )
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [rsyslogd, "-n", "-f", str(conf), "-i", str(self.folder / "rsyslogd.pid")],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"rsyslogd exited:\n{self.tail()}"
            with contextlib.suppress(OSError):
                socket.create_connection(("127.0.0.1", self.tcp_port), 1).close()
                return self
            time.sleep(0.1)
        raise AssertionError(f"rsyslogd did not listen on {self.tcp_port}:\n{self.tail()}")

    def output(self) -> str:
        """What rsyslogd said (its own messages: suspended and resumed actions, errors)."""
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def tail(self) -> str:
        return self.output()[-3000:]

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def relay_env(s, tls_files: tuple[str, str], forward: str) -> dict[str, str]:
    """``forward``: tcp, tls, or mtls (TLS with the relay's client certificate)."""
    cert, key = tls_files
    env = {k: v for k, v in os.environ.items() if not k.startswith("DSRELAY_")}
    env.update(
        DSRELAY_BIND="127.0.0.1",
        DSRELAY_UDP_PORT=str(free_port(socket.SOCK_DGRAM)),
        DSRELAY_TCP_PORT=str(free_port()),
        DSRELAY_FORWARD_TCP="on" if forward == "tcp" else "off",
        DSRELAY_FORWARD_TLS="on" if forward == "tls" else "off",
        DSRELAY_FORWARD_MTLS="on" if forward == "mtls" else "off",
        DSRELAY_INGEST_HOST="127.0.0.1",
        DSRELAY_INGEST_TCP_PORT=str(s.syslog_tcp_port),
        DSRELAY_INGEST_TLS_PORT=str(s.syslog_tls_port),
        DSRELAY_INGEST_TLS_NAME="127.0.0.1",
        # one self-signed certificate plays every part: ingest, CA, relay client
        DSRELAY_TLS_CA=cert,
        DSRELAY_TLS_CERT=cert,
        DSRELAY_TLS_KEY=key,
        DSRELAY_QUEUE_MAX_DISK="256m",
    )
    return env


# --- the outcome ----------------------------------------------------------------------------
def indexed(es_client, s) -> dict[int, list[str]]:
    """Sequence number -> the ``event.original`` of every document holding it."""
    from elasticsearch import helpers

    es_client.indices.refresh(index=s.index_prefix)
    found: dict[int, list[str]] = {}
    for hit in helpers.scan(
        es_client,
        index=s.index_prefix,
        _source=["panw.panos.sequence_number", "event.original"],
        size=5000,
    ):
        source = hit["_source"]
        seqno = source["panw"]["panos"]["sequence_number"]
        found.setdefault(seqno, []).append(source["event"]["original"])
    return found


def wait_indexed(es_client, s, count: int, services: Services, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    seen = -1
    while time.monotonic() < deadline:
        services.check_alive()
        with contextlib.suppress(Exception):
            es_client.indices.refresh(index=s.index_prefix)
            seen = es_client.count(index=s.index_prefix)["count"]
            if seen >= count:
                return seen
        time.sleep(1.0)
    return seen


def assert_exactly_once(es_client, s, sent: dict[int, bytes]) -> None:
    found = indexed(es_client, s)
    assert set(found) == set(sent), (
        f"missing {sorted(set(sent) - set(found))[:10]}, unexpected "
        f"{sorted(set(found) - set(sent))[:10]}"
    )
    assert all(len(docs) == 1 for docs in found.values())
    # the relay forwards the firewall's bytes unchanged
    assert all(found[n][0] == sent[n].decode() for n in sent)


# --- fixtures -------------------------------------------------------------------------------
@pytest.fixture
def pipeline_settings(settings, run_prefix, tmp_path, tls_files, request):
    tag = f"{run_prefix}-relay-{secrets.token_hex(3)}"
    cert, key = tls_files
    mutual = request.node.callspec.params.get("forward") == "mtls"
    s = isolated_settings(
        settings,
        tag,
        tmp_path / "worker",
        syslog_tls_cert=cert,
        syslog_tls_key=key,
        syslog_tls_client_ca=cert if mutual else "",
        batch_max_wait_s=0.3,
    )
    assert setup(s) == 0
    return s


@pytest.fixture
def services(pipeline_settings, tmp_path):
    running = Services(pipeline_settings, tmp_path / "logs").start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def start_relay(pipeline_settings, tmp_path, tls_files):
    """Starts rsyslogd forwarding over ``tcp`` or ``tls`` to this test's ingest; stops it."""
    started: list[Relay] = []

    def start(forward: str) -> Relay:
        env = relay_env(pipeline_settings, tls_files, forward)
        started.append(Relay(tmp_path / "relay", env).start())
        return started[-1]

    yield start
    for relay in started:
        relay.stop()


# --- tests ----------------------------------------------------------------------------------
@pytest.mark.parametrize("forward", ["tcp", "tls", "mtls"])
def test_udp_and_tcp_lines_reach_elasticsearch_once_each_unchanged(
    forward, pipeline_settings, services, es_client, start_relay
):
    s = pipeline_settings
    run = int(time.time()) % 900 + 100
    over_tcp = numbered(0, 3000, run)
    over_udp = numbered(3000, 3200, run)
    relay = start_relay(forward)
    target = replay.Target("tcp", "127.0.0.1", relay.tcp_port)
    assert replay.replay(list(over_tcp.values()), target) == len(over_tcp)
    udp = replay.Target("udp", "127.0.0.1", relay.udp_port)
    # paced: a datagram the kernel drops for a full socket buffer is not the relay's loss
    assert replay.replay(list(over_udp.values()), udp, rate=2000) == len(over_udp)
    sent = over_tcp | over_udp
    got = wait_indexed(es_client, s, len(sent), services, timeout=120)
    assert got == len(sent), relay.tail()
    assert_exactly_once(es_client, s, sent)


class Stream(threading.Thread):
    """Sends numbered lines to the relay over TCP at ``rate`` per second."""

    def __init__(self, port: int, lines: list[bytes], rate: float) -> None:
        super().__init__(daemon=True)
        self.port, self.lines, self.rate = port, lines, rate
        self.sent = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=60) as sock:
                started = time.monotonic()
                step = max(1, int(self.rate / 200))  # every 5 ms: lines are in flight at any time
                for i in range(0, len(self.lines), step):
                    chunk = self.lines[i : i + step]
                    sock.sendall(b"".join(line + b"\n" for line in chunk))
                    self.sent += len(chunk)
                    ahead = self.sent / self.rate - (time.monotonic() - started)
                    if ahead > 0:
                        time.sleep(ahead)
                sock.shutdown(socket.SHUT_WR)
                while sock.recv(4096):
                    pass
        except OSError as exc:
            self.error = exc

    def wait_sent(self, count: int, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while self.sent < count and self.is_alive() and time.monotonic() < deadline:
            time.sleep(0.05)


def stop_ingest(services: Services, port: int) -> None:
    ingest = services.procs["ingest"]
    ingest.send_signal(signal.SIGTERM)
    assert ingest.wait(60) == 0
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), 1).close()


@pytest.mark.parametrize("forward", ["tcp", "tls"])
def test_lines_sent_while_the_ingest_restarts_wait_in_the_queue_and_all_arrive(
    forward, pipeline_settings, services, es_client, start_relay
):
    s = pipeline_settings
    run = int(time.time()) % 900 + 100
    sent = numbered(0, 8000, run)
    relay = start_relay(forward)
    stream = Stream(relay.tcp_port, list(sent.values()), rate=1000)
    stream.start()
    stream.wait_sent(2000)
    time.sleep(0.0123)  # between two writes of the stream, not right after one
    stop_ingest(services, s.syslog_tls_port if forward == "tls" else s.syslog_tcp_port)
    stopped_at = stream.sent
    time.sleep(4)  # lines keep coming while nothing listens: rsyslog queues them
    assert stream.sent > stopped_at + 2000
    services.start(worker=False)
    stream.join(120)
    assert stream.error is None and stream.sent == len(sent)
    got = wait_indexed(es_client, s, len(sent), services, timeout=180)
    assert got == len(sent), relay.tail()
    assert_exactly_once(es_client, s, sent)
