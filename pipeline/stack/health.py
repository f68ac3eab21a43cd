"""Is a server really serving? One probe per component, each asking the server itself (an
admin call or a readiness endpoint), never just the TCP port."""

from __future__ import annotations

import contextlib
import http.client
import json
import logging
import socket
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

from pipeline.settings import Settings


@dataclass(frozen=True)
class Health:
    ok: bool
    detail: str  # "green", "ready", "3 topics", or why not
    version: str = ""


def http_get(url: str, timeout_s: float = 2.0) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def http_post(url: str, timeout_s: float = 10.0) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=b"", method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _json(url: str, timeout_s: float = 2.0) -> Any:
    status, body = http_get(url, timeout_s)
    if status != 200:
        raise OSError(f"HTTP {status} from {url}")
    return json.loads(body)


def probe_kafka(settings: Settings, timeout_s: float = 3.0) -> Health:
    # kafka-python is imported here: it is slow to import and only the probe needs it.
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError

    bootstrap = f"{settings.stack_host}:{settings.kafka_port}"
    # kafka-python blocks for a while on a closed port; answer that case at once.
    try:
        socket.create_connection((settings.stack_host, settings.kafka_port), 0.5).close()
    except OSError as exc:
        return Health(False, f"port closed: {exc}")
    timeout_ms = int(timeout_s * 1000)
    # A broker that is not there yet makes kafka-python log connection errors; the probe
    # retries on its own, so keep those out of the user's terminal.
    quiet = logging.getLogger("kafka")
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)
    admin = None
    try:
        admin = KafkaAdminClient(
            bootstrap_servers=bootstrap,
            client_id="decryptscope-stack",
            request_timeout_ms=timeout_ms,
        )
        topics = admin.list_topics()
        return Health(True, f"{len(topics)} topics")
    except (KafkaError, OSError, ValueError) as exc:
        return Health(False, f"{type(exc).__name__}: {exc}")
    finally:
        if admin is not None:
            with contextlib.suppress(Exception):
                admin.close()
        quiet.setLevel(level)


def probe_elasticsearch(settings: Settings, timeout_s: float = 3.0) -> Health:
    base = f"http://{settings.stack_host}:{settings.es_port}"
    try:
        health = _json(f"{base}/_cluster/health?timeout=1s", timeout_s)
        # `GET /` is not served by the integ-test-zip's minimal module set; the nodes API is.
        nodes = _json(f"{base}/_nodes/_local?filter_path=nodes.*.version", timeout_s)
        version = next(iter(nodes.get("nodes", {}).values()), {}).get("version", "")
    except (OSError, ValueError, http.client.HTTPException) as exc:
        return Health(False, f"{type(exc).__name__}: {exc}")
    status = health.get("status", "?")
    return Health(status in {"green", "yellow"}, status, version)


def _probe_ready(base: str, version_path: str, timeout_s: float) -> Health:
    try:
        status, body = http_get(f"{base}/-/ready", timeout_s)
        if status != 200:
            return Health(False, f"HTTP {status}: {body[:80].decode('utf-8', 'replace')}")
        info = _json(f"{base}{version_path}", timeout_s)
    except (OSError, ValueError, http.client.HTTPException) as exc:
        return Health(False, f"{type(exc).__name__}: {exc}")
    version = info.get("data", {}).get("version") or info.get("versionInfo", {}).get("version")
    return Health(True, "ready", version or "")


def probe_prometheus(settings: Settings, timeout_s: float = 3.0) -> Health:
    base = f"http://{settings.stack_host}:{settings.prometheus_port}"
    return _probe_ready(base, "/api/v1/status/buildinfo", timeout_s)


def probe_alertmanager(settings: Settings, timeout_s: float = 3.0) -> Health:
    base = f"http://{settings.stack_host}:{settings.alertmanager_port}"
    return _probe_ready(base, "/api/v2/status", timeout_s)
