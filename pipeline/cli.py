"""The command line: argument parsing only. Each command's implementation is
``pipeline.commands.<module>.run(args, settings) -> int``, imported when the command runs (so
that ``decryptscope parse`` does not load Faust, Kafka or Elasticsearch clients: start-up time).
Errors from the project's error tree are printed to stderr as one line and give exit status 1
(2 for usage errors)."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence

from pipeline import __version__
from pipeline.errors import DecryptscopeError
from pipeline.settings import Settings, load_settings

Builder = Callable[[argparse._SubParsersAction], None]


def _command(p: argparse.ArgumentParser, module: str, function: str = "run") -> None:
    p.set_defaults(command_module=module, command_function=function)


def _add_stack(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "stack", help="start/stop/status of the local Kafka, ES, Prometheus, Alertmanager"
    )
    p.add_argument("action", choices=["up", "down", "status", "fetch"])
    p.add_argument("--json", action="store_true", help="status as JSON")
    p.add_argument("--purge", action="store_true", help="with down: also remove data")
    p.add_argument(
        "--only",
        action="append",
        default=None,
        choices=["kafka", "elasticsearch", "prometheus", "alertmanager"],
        help="limit to these components (repeatable)",
    )
    _command(p, "stack")


def _add_ingest(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("ingest", help="syslog UDP/TCP/TLS listeners -> Kafka panos.raw")
    p.add_argument(
        "--spool", metavar="DIR", help="write accepted messages to this disk queue first"
    )
    _command(p, "ingest")


def _add_worker(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("worker", help="Faust worker: parse, diagnose, correlate, ECS, index")
    p.add_argument("--loglevel", default="WARNING", help="Faust log level (default WARNING)")
    _command(p, "worker")


def _add_setup(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("setup", help="create Kafka topics and Elasticsearch templates")
    p.add_argument("--check", action="store_true", help="report drift only (exit 1 if any)")
    _command(p, "setup")


def _add_retention(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("retention", help="delete daily event indices older than N days")
    p.add_argument("--days", type=int, required=True)
    p.add_argument("--dry-run", action="store_true", help="only list what would be deleted")
    _command(p, "setup", "run_retention")


def _add_replay(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("replay", help="send log files as syslog to a listener")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--to", required=True, help="udp://host:port, tcp://host:port or tls://...")
    p.add_argument("--rate", type=float, default=None, help="messages per second (default: max)")
    p.add_argument("--loop", action="store_true", help="repeat until interrupted")
    p.add_argument("--now", action="store_true", help="rewrite timestamps to now")
    p.add_argument("--octet-counting", action="store_true", help="RFC 6587 framing on TCP/TLS")
    p.add_argument("--cafile", help="TLS: CA to verify the listener")
    p.add_argument("--insecure", action="store_true", help="TLS: do not verify the listener")
    p.add_argument("--cert", help="TLS: client certificate")
    p.add_argument("--key", help="TLS: client key")
    _command(p, "replay")


def _add_demo(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="stack up, setup, ingest + worker, replay samples, summary")
    p.add_argument("--keep", action="store_true", help="leave ingest and worker running")
    _command(p, "demo")


def _add_parse(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "parse", help="PAN-OS logs (CSV, CEF, LEEF, JSON, show session id) -> ECS/OCSF NDJSON"
    )
    p.add_argument(
        "files", nargs="*", metavar="FILE", help="log files, plain or gzip ('-' = stdin)"
    )
    p.add_argument(
        "--strict", action="store_true", help="exit 1 if any message could not be parsed"
    )
    p.add_argument(
        "--no-diagnosis", action="store_true", help="do not classify decryption failures"
    )
    p.add_argument(
        "--no-correlation",
        action="store_true",
        help="diagnose each line alone (do not join the lines of a session)",
    )
    p.add_argument(
        "--format",
        choices=["ecs", "ocsf"],
        default="ecs",
        help="ecs (default), or ocsf: OCSF 1.8.0 Network Activity of the DECRYPTION, TRAFFIC "
        "and show session id events (other log types are left out)",
    )
    _command(p, "parse")


def _add_diagnose(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "diagnose", help="explain a 'show session id' output or log line(s): cause, why, fix"
    )
    p.add_argument("file", nargs="?", default="-", metavar="FILE", help="input ('-' = stdin)")
    p.add_argument("--json", action="store_true", help="verdicts as JSON")
    _command(p, "diagnose")


def _add_analyze(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("analyze", help="offline report: failures by cause, top servers, fixes")
    p.add_argument("files", nargs="*", metavar="FILE", help="log files, plain/gzip ('-' = stdin)")
    p.add_argument("--json", action="store_true", help="the report as JSON")
    p.add_argument("--html", metavar="PATH", help="also write a self-contained HTML report")
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    p.add_argument(
        "--change-at",
        action="append",
        metavar="TIME[,SERIAL]",
        help="a change the logs do not show (ISO 8601 time; without a serial: every firewall); "
        "compared before/after like the detected ones (repeatable)",
    )
    _command(p, "analyze")


def _add_recommend(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "recommend",
        help="evidence-gated changes (exclusions, trust chain, CA, profile, inbound) as text, "
        "JSON, PAN-OS set commands or XML",
    )
    p.add_argument("files", nargs="*", metavar="FILE", help="log files, plain/gzip ('-' = stdin)")
    p.add_argument(
        "--from-es",
        action="store_true",
        help="read the events already in Elasticsearch (alias index_prefix) instead of files",
    )
    p.add_argument(
        "--since",
        default="24h",
        help="with --from-es: the window, e.g. 90m, 24h, 7d, or all (default 24h)",
    )
    p.add_argument("--format", choices=["text", "json", "set", "xml"], default="text")
    p.add_argument(
        "--device-group",
        default="<device-group>",
        help="Panorama device group of the set/xml output (default: a placeholder)",
    )
    p.add_argument(
        "--template",
        default="<template>",
        help="Panorama template of the set/xml output (default: a placeholder)",
    )
    p.add_argument(
        "--profile",
        action="append",
        metavar="RULE=PROFILE",
        help="the Decryption profile of a decryption rule (logs do not name profiles; repeatable)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    _command(p, "recommend")


def _add_dlq(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("dlq", help="show dead letters; replay them to the raw topic after a fix")
    p.add_argument("action", choices=["show", "replay"])
    p.add_argument("--since", metavar="WINDOW|TIME", help="e.g. 90m, 24h, 7d, all or an ISO time")
    p.add_argument("--stage", help="only dead letters of this stage (parse, config, index, ...)")
    p.add_argument("--json", action="store_true", help="show: each dead letter as JSON")
    p.add_argument(
        "--include-replayed",
        action="store_true",
        help="replay: also send again what failed again after a replay (newest of each)",
    )
    _command(p, "dlq")


COMMAND_BUILDERS: list[Builder] = [
    _add_stack,
    _add_parse,
    _add_diagnose,
    _add_analyze,
    _add_recommend,
    _add_ingest,
    _add_worker,
    _add_setup,
    _add_retention,
    _add_replay,
    _add_demo,
    _add_dlq,
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="decryptscope",
        description=(
            "Why does TLS decryption on PAN-OS fail? Parse, diagnose, stream, index, alert."
        ),
    )
    parser.add_argument("--version", action="version", version=f"decryptscope {__version__}")
    parser.add_argument("--config", help="TOML settings file (default: $DECRYPTSCOPE_CONFIG)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for builder in COMMAND_BUILDERS:
        builder(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings: Settings = load_settings(args.config)
        module = importlib.import_module(f"pipeline.commands.{args.command_module}")
        return getattr(module, args.command_function)(args, settings)
    except DecryptscopeError as exc:
        print(f"decryptscope {args.command}: {exc.message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
