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
    p = sub.add_parser("stack", help="start/stop/status of the local Kafka, ES, Prometheus, Alertmanager")
    p.add_argument("action", choices=["up", "down", "status", "fetch"])
    p.add_argument("--json", action="store_true", help="status as JSON")
    p.add_argument("--purge", action="store_true", help="with down: also remove data")
    p.add_argument(
        "--only", action="append", default=None,
        choices=["kafka", "elasticsearch", "prometheus", "alertmanager"],
        help="limit to these components (repeatable)",
    )
    p.set_defaults(handler=cmd_stack)


COMMAND_BUILDERS: list[Callable[[argparse._SubParsersAction], None]] = [_add_stack]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="decryptscope",
        description="Why does TLS decryption on PAN-OS fail? Parse, diagnose, stream, index, alert.",
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
