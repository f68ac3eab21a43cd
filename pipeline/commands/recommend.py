"""``decryptscope recommend [FILE ...] [--from-es --since 24h] [--format text|json|set|xml]``:
the configuration changes the evidence supports, with that evidence.

From log files the documents come through the chain, as ``analyze`` reads them (the same code
path: its report's recommendations section); from Elasticsearch they are the events already
indexed behind the ``index_prefix`` alias in the window (failures, and the decrypted sessions
the exclusion gate needs). Both go through ``pipeline.recommend``, so the same events give the
same recommendations.
"""

from __future__ import annotations

import argparse
import re
import sys
from datetime import timedelta
from typing import Any

from pipeline.commands import analyze
from pipeline.errors import ConfigError
from pipeline.recommend import SOURCE_FIELDS, Evidence, Gates
from pipeline.report.panos_config import Target, render_set, render_xml
from pipeline.report.text import render_json, render_recommendations
from pipeline.settings import Settings
from pipeline.sinks.elasticsearch import make_client

_SINCE = re.compile(r"(\d+)\s*([smhdw])")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
SCAN_SIZE = 1000


def parse_since(text: str) -> timedelta | None:
    """``90s``, ``30m``, ``24h``, ``7d``, ``2w``; ``all`` for no limit."""
    if text.strip().lower() == "all":
        return None
    found = _SINCE.fullmatch(text.strip().lower())
    if not found or int(found.group(1)) <= 0:
        raise ConfigError(f"--since {text!r}: expected e.g. 90m, 24h, 7d or all")
    return timedelta(seconds=int(found.group(1)) * _UNIT_S[found.group(2)])


def es_query(since: timedelta | None) -> dict[str, Any]:
    """Failures, and decrypted sessions (``tls.established``), in the window."""
    query: dict[str, Any] = {
        "bool": {
            "should": [
                {"term": {"decryptscope.failure": True}},
                {"term": {"tls.established": True}},
            ],
            "minimum_should_match": 1,
        }
    }
    if since is not None:
        seconds = int(since.total_seconds())
        query["bool"]["filter"] = [{"range": {"@timestamp": {"gte": f"now-{seconds}s"}}}]
    return query


def evidence_from_es(client: Any, index: str, since: timedelta | None) -> Evidence:
    """The events of ``index`` (an alias or pattern) in the window, as evidence."""
    from elasticsearch import ApiError, TransportError
    from elasticsearch.helpers import ScanError, scan

    evidence = Evidence()
    try:
        for hit in scan(
            client,
            index=index,
            query={"query": es_query(since), "_source": list(SOURCE_FIELDS)},
            size=SCAN_SIZE,
            ignore_unavailable=True,
        ):
            evidence.add(hit["_id"], hit["_source"])
    except (ApiError, TransportError, ScanError) as exc:
        raise ConfigError(f"cannot read the events from Elasticsearch ({index}): {exc}") from exc
    return evidence


def from_es(settings: Settings, since: timedelta | None) -> dict[str, Any]:
    """The recommendations of the events indexed behind ``index_prefix`` in the window."""
    client = make_client(settings, asynchronous=False)
    try:
        evidence = evidence_from_es(client, settings.index_prefix, since)
    finally:
        client.close()
    return evidence.recommend(Gates.from_settings(settings))


def from_files(files: list[str], settings: Settings, *, progress: bool = False) -> dict[str, Any]:
    """The recommendations of log files: the ``analyze`` report's section."""
    return analyze.build(files, settings, progress=progress)["recommendations"]


def target_of(args: argparse.Namespace) -> Target:
    profiles = {}
    for item in args.profile or ():
        rule, sep, name = item.partition("=")
        if not sep or not rule or not name:
            raise ConfigError(f"--profile {item!r}: expected RULE=PROFILE")
        profiles[rule] = name
    return Target(args.device_group, args.template, profiles)


def render(section: dict[str, Any], fmt: str, target: Target | None = None) -> str:
    if fmt == "json":
        return render_json(section)
    if fmt == "set":
        return render_set(section, target)
    if fmt == "xml":
        return render_xml(section, target)
    return render_recommendations(section)


def run(args: argparse.Namespace, settings: Settings) -> int:
    target = target_of(args)
    if args.from_es:
        if args.files:
            raise ConfigError("give log files or --from-es, not both")
        section = from_es(settings, parse_since(args.since))
    else:
        files = args.files or ["-"]
        progress = sys.stderr.isatty() and not args.no_progress
        section = from_files(files, settings, progress=progress)
    sys.stdout.write(render(section, args.format, target))
    return 0
