"""Replay helpers (pipeline.replay): headers, timestamp rewriting, targets, framing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from pipeline.commands import replay
from pipeline.errors import ConfigError

NOW = datetime(2026, 3, 4, 5, 6, 7, 891000, tzinfo=timezone(timedelta(hours=1)))
BARE = b"1,2021/11/11 15:42:44,007051000184334,DECRYPTION,0,2561,2021/11/11 15:42:43,x"


def test_bsd_header_added_only_when_missing() -> None:
    with_header = replay.with_header(BARE, NOW)
    assert with_header.startswith(b"<14>Mar  4 05:06:07 replay 1,2021/11/11")
    assert replay.with_header(with_header, NOW) == with_header


def test_now_rewrites_every_timestamp() -> None:
    line = b"<14>Nov 30 16:09:33 PA-220 " + BARE + b",2021-11-11T15:42:44.123+01:00"
    out = replay.rewrite_times(line, NOW)
    assert out.startswith(b"<14>Mar  4 05:06:07 PA-220 1,2026/03/04 05:06:07,007051000184334")
    assert b"2021" not in out
    assert out.endswith(b"2026-03-04T05:06:07.891+01:00")


def test_keep_offsets_moves_every_timestamp_by_the_same_amount() -> None:
    first = b"<14>Nov 11 15:42:44 PA-220 " + BARE + b",2021/12/31 00:00:00,2021-11-11T15:42:44.123Z"
    second = b"<14>Nov 11 16:42:43 PA-220 1,2021/11/11 16:42:44,007051000184334,DECRYPTION,x"
    assert replay.latest_time([first, second]) == datetime(2021, 11, 11, 16, 42, 44)
    out = replay.shift_times(first, timedelta(days=1, hours=2), 2021)
    assert out.startswith(b"<14>Nov 12 17:42:44 PA-220 1,2021/11/12 17:42:44,007051000184334")
    assert b",2021/11/12 17:42:43,x,2022/01/01 02:00:00,2021-11-12T17:42:44.123+00:00" in out
    before = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
    moved = replay.prepare([first, second], now=True, keep_offsets=True)
    stamp = datetime.strptime(moved[1].split(b",")[1].decode(), "%Y/%m/%d %H:%M:%S")
    assert before <= stamp <= before + timedelta(seconds=5)
    earlier = datetime.strptime(moved[0].split(b",")[1].decode(), "%Y/%m/%d %H:%M:%S")
    assert stamp - earlier == timedelta(hours=1)


def test_read_lines_skips_comments_and_blanks(tmp_path) -> None:
    path = tmp_path / "a.log"
    path.write_bytes(b"# source: somewhere\n\n" + BARE + b"\r\n" + BARE + b"\n")
    assert replay.read_lines([path]) == [BARE, BARE]


def test_targets_and_framing() -> None:
    assert replay.parse_target("tls://127.0.0.1:6514") == replay.Target("tls", "127.0.0.1", 6514)
    with pytest.raises(ConfigError):
        replay.parse_target("http://127.0.0.1:80")
    assert replay.frame(b"<14>abc", True) == b"7 <14>abc"
    assert replay.frame(b"<14>abc", False) == b"<14>abc\n"
