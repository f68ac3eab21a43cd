"""The scaled demo traffic the report tests and ``bench/report.py`` use (no browser needed)."""

from __future__ import annotations

import re

import pytest
from traffic import cases, expected_sessions, sample_lines, scaled

from pipeline.panos import parse_line


def test_the_first_copy_is_the_demo_traffic_itself() -> None:
    assert list(scaled(len(sample_lines()))) == sample_lines()


def test_each_copy_has_its_own_sessions_and_moves_every_time_alike() -> None:
    size = len(sample_lines())
    first, second = list(scaled(size)), list(scaled(2 * size))[size:]
    clock = re.compile(r"\d{2}:\d{2}:\d{2}")
    for a, b in zip(first, second, strict=True):
        try:
            ra, rb = parse_line(a), parse_line(b)
        except Exception:
            # a line that does not parse: only its times move
            assert a != b and clock.sub("T", a) == clock.sub("T", b)
            continue
        if "sessionid" in ra:  # TRAFFIC and DECRYPTION: sessions of their own
            assert rb["sessionid"] == ra["sessionid"] + 100_000
            assert rb["seqno"] == ra["seqno"] + 100_000
        for name in ("receive_time", "time_generated", "notafter"):
            if ra.get(name) is not None:
                assert (rb[name] - ra[name]).total_seconds() == 30.0


def test_expected_sessions_come_from_the_sample_comments() -> None:
    one_copy = expected_sessions(len(sample_lines()))
    assert one_copy["client-rejected-firewall-cert"] == 2  # two cases in the sample say so
    # one case each, plus the exclusion-gate destinations: 20 and 19 failures, the comment says
    assert one_copy["client-cert-auth-required"] == 1 + 20
    assert one_copy["unsupported-feature"] == 1 + 19
    failing = {cause for _case, cause, _lines in cases() if cause and cause != "not a failure"}
    assert set(one_copy) == failing
    assert expected_sessions(3 * len(sample_lines())) == {k: 3 * n for k, n in one_copy.items()}
    with pytest.raises(ValueError):
        expected_sessions(4)  # the fourth case has two lines: the cut would split it
