"""The fields that say what a CSV record is must hold, or the record is refused.

A PAN-OS CSV line is read by position: a header the framing misjudged or a relay that mangled
the text shifts the columns, and a shifted line can still fill every column with something.
What catches it is the columns that identify the record: its log type is one PAN-OS writes
(checked where the layout is chosen), its serial looks like a serial, its receive and
generated times parse and lie close to each other, its ports are ports. A record that fails
raises ParseError with the reason; it is dead-lettered, never indexed.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from datetime import datetime, timedelta

from pipeline.errors import ParseError

# Serial numbers are digits (hardware and VM-series firewalls, Panorama: 9 to 15 in real
# logs); anonymised and lab samples mix in letters. A serial has at least one digit, so a
# log type, a time or a host name read one column late is not taken for one. Strata Logging
# Service writes "no-serial" when it has none; PAN-OS leaves the column empty.
_SERIAL = re.compile(r"[0-9A-Za-z_-]{0,64}")
_PLACEHOLDERS = frozenset({"", "no-serial"})
# The generated time is when the dataplane wrote the log, the receive time when the management
# plane got it: the first is not meant to follow the second (a day of slack for clocks and
# summer time), and a log waits at most a year in a buffer (a log collector that was away).
MAX_AHEAD = timedelta(days=1)
MAX_DELAY = timedelta(days=366)
IDENTIFYING_TIMES = ("receive_time", "time_generated")

# Serials that passed, so that a stream's usual few are checked once.
GOOD_SERIALS: set[str] = set()
GOOD_SERIALS_MAX = 4096


def check_serial(serial: str) -> None:
    if serial in GOOD_SERIALS:
        return
    if serial not in _PLACEHOLDERS and (
        _SERIAL.fullmatch(serial) is None or not any(c.isdigit() for c in serial)
    ):
        raise ParseError(
            f"serial number {serial[:64]!r} is not one (a shifted or foreign line)",
            error_type="bad_serial",
        )
    if len(GOOD_SERIALS) < GOOD_SERIALS_MAX:
        GOOD_SERIALS.add(serial)


def check_times(received: object, generated: object) -> None:
    """Both are datetimes (or absent); the generated time must lie in the receive time's window."""
    if received.__class__ is not datetime or generated.__class__ is not datetime:
        return
    lag = received - generated  # type: ignore[operator]
    if lag > MAX_DELAY or -lag > MAX_AHEAD:
        raise ParseError(
            f"generated time {generated} is not within a day after / a year before the "
            f"receive time {received} (a shifted line)",
            error_type="bad_timestamp",
        )


def stamp_agrees(stamp: datetime, generated: object) -> bool:
    """Whether the High Resolution Timestamp is the generated time (to the day): a placeholder
    there (1970-01-01 in some exports) must neither date the event nor give the line's zone."""
    if generated.__class__ is not datetime:
        return True
    # Both are read in the line's offset: the same calendar day is the common answer.
    if stamp.day == generated.day and stamp.month == generated.month:  # type: ignore[attr-defined]
        return stamp.year == generated.year  # type: ignore[attr-defined]
    return abs(stamp - generated) <= MAX_AHEAD  # type: ignore[operator]


def check_record(rec: Mapping[str, object]) -> None:
    """The identifying fields of a mapped record (serial, receive and generated time)."""
    get = rec.get
    serial = get("serial")
    if serial is not None and serial not in GOOD_SERIALS:
        check_serial(serial)  # type: ignore[arg-type]
    received, generated = get("receive_time"), get("time_generated")
    if received is None and generated is None and "high_res_timestamp" not in rec:
        raise ParseError(
            "no time: receive, generated and high resolution times are empty",
            error_type="bad_timestamp",
        )
    check_times(received, generated)


def check_unreadable(bad: Mapping[str, str], ports: Collection[str]) -> None:
    """Columns a converter rejected: an identifying time or a port is fatal, others are kept
    aside (``_invalid``) with the rest of the record."""
    for name, value in bad.items():
        if name in IDENTIFYING_TIMES:
            raise ParseError(f"{name} {value[:64]!r} is not a time", error_type="bad_timestamp")
        if name in ports:
            raise ParseError(f"{name} {value[:64]!r} is not a port", error_type="bad_value")
