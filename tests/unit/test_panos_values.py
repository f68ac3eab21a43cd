from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from pipeline.errors import ConfigError
from pipeline.panos.values import (
    get_tz,
    line_zone,
    to_hex,
    to_int,
    to_ip,
    to_isotime,
    to_port,
    to_time,
)

PARIS = get_tz("Europe/Paris")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026/11/27 10:00:00", datetime(2026, 11, 27, 10, 0, tzinfo=PARIS)),
        ("9/16/19 10:00", datetime(2019, 9, 16, 10, 0, tzinfo=PARIS)),
        ("Mar 01 2021 20:35:54", datetime(2021, 3, 1, 20, 35, 54, tzinfo=PARIS)),
        ("Jun 02 2016 11:31:20 GMT", datetime(2016, 6, 2, 11, 31, 20, tzinfo=UTC)),
        ("Wed Apr 17 14:04:30 2019", datetime(2019, 4, 17, 14, 4, 30, tzinfo=PARIS)),
        ("1767225600", datetime(2026, 1, 1, tzinfo=UTC)),
        ("1767225600000", datetime(2026, 1, 1, tzinfo=UTC)),
        (
            "2026-11-27T10:00:00.5+09:00",
            datetime(2026, 11, 27, 10, 0, 0, 500000, tzinfo=timezone(timedelta(hours=9))),
        ),
    ],
)
def test_to_time_renderings(text: str, expected: datetime) -> None:
    value = to_time(text, PARIS)
    assert value == expected
    assert value.utcoffset() == expected.utcoffset()


def test_to_time_summer_offset_and_absent_epoch() -> None:
    assert to_time("2026/07/01 10:00:00", PARIS).utcoffset() == timedelta(hours=2)
    assert to_time("0", PARIS) is None


@pytest.mark.parametrize("text", ["{{ time }}", "2026/13/45 10:00:00", "[DATE]", "x" * 19])
def test_to_time_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        to_time(text, PARIS)


def test_isotime() -> None:
    assert to_isotime("2021-11-11T15:42:44.845-08:00", UTC).utcoffset() == timedelta(hours=-8)
    assert to_isotime("2024-11-20T16:39:51.441000Z", PARIS).utcoffset() == timedelta(0)
    assert to_isotime("2024-11-20T16:39:51", PARIS).tzinfo is PARIS
    assert to_isotime("Jul 25 2019 23:30:12", UTC) == datetime(2019, 7, 25, 23, 30, 12, tzinfo=UTC)


def test_numbers_and_addresses() -> None:
    assert to_hex("0x8000000000000000", UTC) == 1 << 63
    assert to_port("443", UTC) == 443
    with pytest.raises(ValueError):
        to_port("65536", UTC)
    assert to_ip("192.0.2.1", UTC) == "192.0.2.1"
    assert to_ip("2001:DB8::0:1", UTC) == "2001:db8::1"
    # A link-local address with its zone (interface): the zone is not part of the address.
    assert to_ip("fe80::1%ethernet1/1", UTC) == "fe80::1"
    for bad in ("256.1.1.1", "XXX.XXX.XXX.XXX", "192.0.2"):
        with pytest.raises(ValueError):
            to_ip(bad, UTC)


@pytest.mark.parametrize(
    "text", ["2024-13-03T19:09:43.654+01:00", "2024-11-03T25:09:43", "2024-11-32T10:00:00Z"]
)
def test_invalid_iso_times_are_value_errors(text: str) -> None:
    for convert in (to_time, to_isotime):
        with pytest.raises(ValueError):
            convert(text, PARIS)


def test_integers_beyond_64_bits_stay_text() -> None:
    assert to_int(str(2**63 - 1), UTC) == 2**63 - 1
    assert to_int(str(2**63), UTC) == str(2**63)
    assert to_int("-" + str(2**63), UTC) == -(2**63)
    assert to_hex("0xffffffffffffffff", UTC) == 2**64 - 1
    assert to_hex("0x10000000000000000", UTC) == "0x10000000000000000"


@pytest.mark.parametrize(
    ("stamp", "hours"),
    [
        ("2021-11-11T15:42:44.845-08:00", -8),
        ("2024-11-20T16:39:51.441000Z", 0),
        ("2026-01-01T00:00:00+05:30", 5.5),
    ],
)
def test_line_zone(stamp: str, hours: float) -> None:
    assert line_zone(stamp).utcoffset(None) == timedelta(hours=hours)


@pytest.mark.parametrize("stamp", ["2021/11/11 15:42:44", "Jul 25 2019 23:30:12", "x-08:00"])
def test_no_line_zone(stamp: str) -> None:
    assert line_zone(stamp) is None


def test_time_zones() -> None:
    assert get_tz("+05:30").utcoffset(None) == timedelta(hours=5, minutes=30)
    assert get_tz("-08:00").utcoffset(None) == timedelta(hours=-8)
    assert get_tz("UTC") is UTC
    with pytest.raises(ConfigError, match="Mars/Olympus"):
        get_tz("Mars/Olympus")
