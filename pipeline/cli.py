"""The command line: a thin layer that parses arguments, builds Settings and calls the rooms.

Each command is a function ``cmd_<name>(args, settings) -> int``. Errors from the project's
error tree are printed to stderr as one line and give exit status 1 (2 for usage errors)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from pipeline import __version__
from pipeline.errors import DecryptscopeError
from pipeline.settings import Settings, load_settings

Handler = Callable[[argparse.Namespace, Settings], int]


# --- stack --------------------------------------------------------------------------------
def cmd_stack(args: argparse.Namespace, settings: Settings) -> int:
    from pipeline import stack

    return stack.main(args, settings)


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
    p.set_defaults(handler=cmd_stack)


# --- streaming: ingest, worker, setup, retention, replay, demo ----------------------------
def cmd_ingest(args: argparse.Namespace, settings: Settings) -> int:
    import dataclasses

    from pipeline import ingest

    if args.spool:
        settings = dataclasses.replace(settings, spool_dir=args.spool)
    return ingest.main(settings)


def _add_ingest(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("ingest", help="syslog UDP/TCP/TLS listeners -> Kafka panos.raw")
    p.add_argument(
        "--spool", metavar="DIR", help="write accepted messages to this disk queue first"
    )
    p.set_defaults(handler=cmd_ingest)


def cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    from pipeline.stream import app

    return app.run_worker(settings, loglevel=args.loglevel)


def _add_worker(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("worker", help="Faust worker: parse, diagnose, correlate, ECS, index")
    p.add_argument("--loglevel", default="WARNING", help="Faust log level (default WARNING)")
    p.set_defaults(handler=cmd_worker)


def cmd_setup(args: argparse.Namespace, settings: Settings) -> int:
    from pipeline.stream import provision

    return provision.run(settings, check=args.check)


def _add_setup(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("setup", help="create Kafka topics and Elasticsearch templates")
    p.add_argument("--check", action="store_true", help="report drift only (exit 1 if any)")
    p.set_defaults(handler=cmd_setup)


def cmd_retention(args: argparse.Namespace, settings: Settings) -> int:
    from pipeline.stream import provision

    return provision.retention(settings, args.days, dry_run=args.dry_run)


def _add_retention(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("retention", help="delete daily event indices older than N days")
    p.add_argument("--days", type=int, required=True)
    p.add_argument("--dry-run", action="store_true", help="only list what would be deleted")
    p.set_defaults(handler=cmd_retention)


def cmd_replay(args: argparse.Namespace, settings: Settings) -> int:
    from pipeline import replay

    target = replay.parse_target(args.to)
    messages = replay.prepare(replay.read_lines(args.files), now=args.now)
    sent = replay.replay(
        messages,
        target,
        rate=args.rate,
        loop=args.loop,
        octet_counting=args.octet_counting,
        cafile=args.cafile,
        insecure=args.insecure,
        certfile=args.cert,
        keyfile=args.key,
    )
    print(f"sent {sent} messages to {args.to}", file=sys.stderr)
    return 0


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
    p.set_defaults(handler=cmd_replay)


def cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    from pipeline import demo

    return demo.main(settings, keep=args.keep)


def _add_demo(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="stack up, setup, ingest + worker, replay samples, summary")
    p.add_argument("--keep", action="store_true", help="leave ingest and worker running")
    p.set_defaults(handler=cmd_demo)


# --- parse --------------------------------------------------------------------------------
def cmd_parse(args: argparse.Namespace, settings: Settings) -> int:
    from pipeline.panos.reader import run_parse

    tz_for = settings.timezone_for if settings.device_timezones else None
    convert = None
    if args.format == "ocsf":
        from pipeline.ocsf import to_ocsf

        convert = to_ocsf
    failures = run_parse(
        args.files or ["-"],
        sys.stdout.buffer,
        sys.stderr,
        default_tz=settings.default_timezone,
        tz_for=tz_for,
        diagnose=not args.no_diagnosis,
        convert=convert,
    )
    sys.stdout.flush()
    return 1 if failures and args.strict else 0


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
        "--format",
        choices=["ecs", "ocsf"],
        default="ecs",
        help="ecs (default), or ocsf: OCSF 1.8.0 Network Activity of the DECRYPTION, TRAFFIC "
        "and show session id events (other log types are left out)",
    )
    p.set_defaults(handler=cmd_parse)


COMMAND_BUILDERS: list[Callable[[argparse._SubParsersAction], None]] = [_add_stack]
COMMAND_BUILDERS += [_add_parse]


# --- diagnose / analyze ---------------------------------------------------------------------
def cmd_diagnose(args: argparse.Namespace, settings: Settings) -> int:
    from pipeline.diagnosis import command

    return command.main(args, settings)


def _add_diagnose(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "diagnose", help="explain a 'show session id' output or log line(s): cause, why, fix"
    )
    p.add_argument("file", nargs="?", default="-", metavar="FILE", help="input ('-' = stdin)")
    p.add_argument("--json", action="store_true", help="verdicts as JSON")
    p.set_defaults(handler=cmd_diagnose)


def cmd_analyze(args: argparse.Namespace, settings: Settings) -> int:
    from pipeline.report import command

    return command.main(args, settings)


def _add_analyze(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("analyze", help="offline report: failures by cause, top servers, fixes")
    p.add_argument("files", nargs="*", metavar="FILE", help="log files, plain/gzip ('-' = stdin)")
    p.add_argument("--json", action="store_true", help="the report as JSON")
    p.add_argument("--html", metavar="PATH", help="also write a self-contained HTML report")
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    p.set_defaults(handler=cmd_analyze)


COMMAND_BUILDERS += [_add_diagnose, _add_analyze]
COMMAND_BUILDERS += [_add_ingest, _add_worker, _add_setup, _add_retention, _add_replay, _add_demo]


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
        settings = load_settings(args.config)
        handler: Handler = args.handler
        return handler(args, settings)
    except DecryptscopeError as exc:
        print(f"decryptscope {args.command}: {exc.message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
