"""PAN-OS log formats -> typed records (pure).

``parse_line`` takes one syslog message (bytes or text, with or without a syslog header) in
any of the renderings PAN-OS and its log services produce - CSV by log type and release, CEF,
LEEF, JSON - or one ``show session id`` output, and returns one plain dict keyed by PAN-OS's
custom-log-format variable names (see ``schemas/panos/``). Meta keys start with ``_``."""

from __future__ import annotations

from pipeline.panos.line import MAX_MESSAGE, parse_line
from pipeline.panos.reader import iter_events, iter_records, parse_text

__all__ = ["MAX_MESSAGE", "iter_events", "iter_records", "parse_line", "parse_text"]
