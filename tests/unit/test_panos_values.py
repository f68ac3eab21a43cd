from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from pipeline.errors import ConfigError
from pipeline.panos.values import get_tz, to_hex, to_ip, to_isotime, to_port, to_time

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
    for bad in ("256.1.1.1", "XXX.XXX.XXX.XXX", "192.0.2"):
        with pytest.raises(ValueError):
            to_ip(bad, UTC)


def test_time_zones() -> None:
    assert get_tz("+05:30").utcoffset(None) == timedelta(hours=5, minutes=30)
    assert get_tz("-08:00").utcoffset(None) == timedelta(hours=-8)
    assert get_tz("UTC") is UTC
    with pytest.raises(ConfigError, match="Mars/Olympus"):
        get_tz("Mars/Olympus")
