"""Pure rendering of the local servers' configuration from Settings and the data files in
``deploy/`` (no I/O beyond what the caller passes in)."""

from __future__ import annotations

import base64
import json
import re
import string
import uuid
from collections.abc import Iterable, Mapping

from pipeline.errors import StackError
from pipeline.settings import Settings

# A line such as `- targets: ["127.0.0.1:9090"]  # @prometheus` in prometheus.yml.
_MARKED_LIST = re.compile(r"^(?P<head>.*?)\[[^\]]*\](?P<tail>\s*#\s*@(?P<name>[a-z_]+)\s*)$")


def render_template(text: str, values: Mapping[str, object], *, source: str) -> str:
    """Fill ``${name}`` placeholders; a placeholder without a value is a StackError."""
    try:
        return string.Template(text).substitute({k: str(v) for k, v in values.items()})
    except (KeyError, ValueError) as exc:
        raise StackError(f"{source}: no value for placeholder {exc}") from exc


def kafka_properties(template: str, settings: Settings, data_dir: str) -> str:
    return render_template(
        template,
        {
            "host": settings.stack_host,
            "kafka_port": settings.kafka_port,
            "controller_port": settings.kafka_controller_port,
            "data_dir": data_dir,
        },
        source="deploy/local/kafka-server.properties",
    )


def elasticsearch_yml(
    template: str, settings: Settings, data_dir: str, logs_dir: str, *, security_module: bool
) -> str:
    text = render_template(
        template,
        {
            "host": settings.stack_host,
            "http_port": settings.es_port,
            "transport_port": settings.es_transport_port,
            "data_dir": data_dir,
            "logs_dir": logs_dir,
        },
        source="deploy/local/elasticsearch.yml",
    )
    # Only when the module is there: an unknown setting stops the node.
    if security_module:
        text = text.rstrip("\n") + "\nxpack.security.enabled: false\n"
    return text


def heap_options(heap: str) -> str:
    if not re.fullmatch(r"\d+[kmgKMG]?", heap):
        raise StackError(f"heap size {heap!r} is not a JVM size such as 512m")
    return f"-Xms{heap}\n-Xmx{heap}\n"


def prometheus_addresses(settings: Settings) -> dict[str, list[str]]:
    host = settings.stack_host
    return {
        "prometheus": [f"{host}:{settings.prometheus_port}"],
        "alertmanager": [f"{host}:{settings.alertmanager_port}"],
        "pipeline": list(settings.scrape_targets),
    }


def render_prometheus(template: str, addresses: Mapping[str, Iterable[str]]) -> str:
    """Replace the list on each line marked ``# @<name>`` with ``addresses[name]``."""
    out = []
    seen = set()
    for line in template.splitlines(keepends=True):
        body = line.rstrip("\n")
        match = _MARKED_LIST.match(body)
        if match:
            name = match["name"]
            if name not in addresses:
                raise StackError(f"deploy/prometheus/prometheus.yml: unknown marker @{name}")
            seen.add(name)
            targets = json.dumps(list(addresses[name]))
            out.append(f"{match['head']}{targets}{match['tail']}" + line[len(body) :])
        else:
            out.append(line)
    missing = sorted(set(addresses) - seen)
    if missing:
        raise StackError(
            "deploy/prometheus/prometheus.yml: no line marked "
            + ", ".join(f"@{m}" for m in missing)
        )
    return "".join(out)


def kafka_cluster_id() -> str:
    """A cluster id as `kafka-storage random-uuid` makes it: a UUID in URL-safe base64."""
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not text.startswith("-"):  # Kafka refuses ids that look like a command-line flag
            return text
