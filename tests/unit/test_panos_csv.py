"""PAN-OS CSV: quote-aware splitting, layout choice by release and column count, typing."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from pipeline.errors import ParseError
from pipeline.panos import parse_line
from pipeline.panos.csv_line import split_csv
from pipeline.panos.layouts import layouts

LAYOUTS = layouts()


def make_line(log_type: str, config_ver: str, count: int, **values: str) -> str:
    names = LAYOUTS[log_type].names[:count]
    base = {
        "receive_time": "2026/11/27 10:00:01",
        "serial": "013201000001",
        "type": log_type,
        "subtype": "0",
        "config_ver": config_ver,
        "time_generated": "2026/11/27 10:00:00",
        "src": "192.0.2.10",
        "dst": "203.0.113.20",
        "sessionid": "42",
        "sport": "51000",
        "dport": "443",
        "proto": "tcp",
        "action": "allow",
        "flags": "0x1400000",
        "seqno": "7",
    }
    base.update(values)
    cols = [base.get(n, "") for n in names]
    cols[0] = "1"
    return ",".join(cols)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("a,b,,c", ["a", "b", "", "c"]),
        ('a,"b,c",d', ["a", "b,c", "d"]),
        ('a,"say ""hi""",d', ["a", 'say "hi"', "d"]),
        ("a,{1,2,3},d", ["a", "{1,2,3}", "d"]),
        ('a,\\"x,y\\",d', ["a", "x,y", "d"]),
        # only the closing quote backslash-escaped: the whole line takes the escape-aware path
        ('a,"b,c\\",d', ["a", "b,c", "d"]),
        ('a,"open,d', ["a", '"open', "d"]),
        ("a,{open,d", ["a", "{open", "d"]),
        ('a,"b",', ["a", "b", ""]),
        ("", [""]),
    ],
)
def test_split_csv(body: str, expected: list[str]) -> None:
    assert split_csv(body) == expected


@pytest.mark.parametrize(
    ("config_ver", "count", "layout"),
    [
        ("2560", 91, "10.0"),
        ("2561", 106, "10.1"),
        ("2562", 107, "10.2"),
        ("2817", 108, "11.1"),
        ("3073", 108, "12.1"),
    ],
)
def test_decryption_layout_by_config_version(config_ver: str, count: int, layout: str) -> None:
    rec = parse_line(make_line("DECRYPTION", config_ver, count, cluster_name="c1"))
    assert rec["_layout"] == layout
    assert "_truncated" not in rec
    assert "_extra" not in rec


def test_tunneled_application_column_is_where_real_logs_put_it() -> None:
    rec = parse_line(
        make_line(
            "DECRYPTION",
            "2562",
            107,
            tunneled_app="ssl",
            is_saas_of_app="no",
            sanctioned_state_of_app="yes",
        )
    )
    assert (rec["tunneled_app"], rec["is_saas_of_app"], rec["sanctioned_state_of_app"]) == (
        "ssl",
        "no",
        "yes",
    )


def test_unknown_config_version_picks_layout_by_count() -> None:
    assert parse_line(make_line("TRAFFIC", "0000", 67))["_layout"] == "9.0"
    assert parse_line(make_line("TRAFFIC", "1", 46))["_layout"] == "6.0"


def test_fewer_columns_parse_as_far_as_they_go() -> None:
    rec = parse_line(make_line("DECRYPTION", "2562", 40, hs_stage_c2f="Client_Hello"))
    assert rec["_truncated"] is True
    assert rec["hs_stage_c2f"] == "Client_Hello"
    assert "tls_version" not in rec


def test_extra_columns_are_kept() -> None:
    rec = parse_line(make_line("TRAFFIC", "3073", 130) + ",x,,y")
    assert rec["_extra"] == ["x", "", "y"]


def test_values_are_typed() -> None:
    rec = parse_line(
        make_line(
            "DECRYPTION",
            "2562",
            107,
            high_res_timestamp="2026-11-27T10:00:00.123+01:00",
            cert_size="2048",
        )
    )
    assert rec["sessionid"] == 42 and rec["sport"] == 51000 and rec["seqno"] == 7
    assert rec["flags"] == 0x1400000
    assert rec["cert_size"] == 2048
    assert rec["time_generated"] == datetime(
        2026, 11, 27, 10, 0, 0, tzinfo=rec["time_generated"].tzinfo
    )
    # Local times are read in the offset the line's High Resolution Timestamp carries.
    assert rec["time_generated"].utcoffset() == timedelta(hours=1)
    assert rec["high_res_timestamp"] == datetime(
        2026, 11, 27, 10, 0, 0, 123000, tzinfo=timezone(timedelta(hours=1))
    )
    assert "dstuser" not in rec  # empty columns are absent
    assert "-" not in rec


def test_firewall_time_zone_from_serial() -> None:
    line = make_line("TRAFFIC", "2562", 115)
    rec = parse_line(line, default_tz="UTC", tz_for={"013201000001": "Asia/Tokyo"}.get)
    assert rec["time_generated"].utcoffset() == timedelta(hours=9)
    rec = parse_line(line, default_tz="-08:00")
    assert rec["time_generated"].utcoffset() == timedelta(hours=-8)


def test_line_offset_wins_over_the_settings() -> None:
    # The firewall's own offset for this record; the settings are for lines without one.
    line = make_line("TRAFFIC", "2562", 115, high_res_timestamp="2026-11-27T10:00:00.5-08:00")
    rec = parse_line(line, default_tz="UTC", tz_for={"013201000001": "Asia/Tokyo"}.get)
    for key in ("time_generated", "receive_time", "high_res_timestamp"):
        assert rec[key].utcoffset() == timedelta(hours=-8), key


def test_bad_values_are_set_aside_not_fatal() -> None:
    rec = parse_line(make_line("DECRYPTION", "2562", 107, sessionid="abc", src="not-an-ip"))
    assert rec["_invalid"] == {"sessionid": "abc", "src": "not-an-ip"}
    assert "sessionid" not in rec and "src" not in rec


@pytest.mark.parametrize(
    ("values", "error_type"),
    [
        ({"sport": "99999"}, "bad_value"),
        ({"dport": "-1"}, "bad_value"),
        ({"serial": "USERID"}, "bad_serial"),
        ({"serial": "2026/11/27 10:00:00"}, "bad_serial"),
        ({"time_generated": "2388/04/28 10:00:00"}, "bad_timestamp"),
        ({"time_generated": "2024/11/26 09:00:00"}, "bad_timestamp"),
        ({"receive_time": "not a time"}, "bad_timestamp"),
        ({"time_generated": "2026/13/27 10:00:00"}, "bad_timestamp"),
        ({"type": "NOTATYPE"}, "unknown_log_type"),
    ],
)
def test_a_record_whose_identifying_fields_do_not_hold_is_refused(
    values: dict[str, str], error_type: str
) -> None:
    with pytest.raises(ParseError) as info:
        parse_line(make_line("TRAFFIC", "2562", 115, **values))
    assert info.value.error_type == error_type


@pytest.mark.parametrize(
    "values",
    [
        {"serial": ""},  # some firewalls and Panorama leave it empty
        {"serial": "no-serial"},  # Strata Logging Service
        {"serial": "007XXXXX341044"},  # anonymised
        {"time_generated": "2026/11/27 09:59:00", "receive_time": "2026/11/28 09:00:00"},
        {"time_generated": "2026/11/27 10:30:00", "receive_time": "2026/11/27 10:00:00"},
    ],
)
def test_plausible_identifying_fields_are_kept(values: dict[str, str]) -> None:
    rec = parse_line(make_line("TRAFFIC", "2562", 115, **values))
    assert rec["type"] == "TRAFFIC"


def test_integers_beyond_64_bits_are_kept_as_text() -> None:
    big = str(2**64 + 5)
    rec = parse_line(make_line("TRAFFIC", "2562", 115, seqno=big, bytes="18446744073709551616"))
    assert rec["seqno"] == big
    assert rec["bytes"] == "18446744073709551616"
    assert rec["sessionid"] == 42
    # Bit fields are unsigned: the "forwarded to Panorama" action flag is the top bit.
    rec = parse_line(make_line("TRAFFIC", "2562", 115, actionflags="0x8000000000000000"))
    assert rec["actionflags"] == 2**63


def test_ipv6_is_canonical() -> None:
    rec = parse_line(make_line("TRAFFIC", "2562", 115, src="2001:DB8:0:0::1"))
    assert rec["src"] == "2001:db8::1"


@pytest.mark.parametrize(
    ("line", "error_type"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("hello world", "not_panos"),
        ("1,2,3", "not_panos"),
        ("1,2026/11/27 10:00:01,0132,TRAFFIC,end", "too_few_columns"),
        ("1,x,0132,TRAFFIC,end,2562,y,192.0.2.1", "bad_timestamp"),
        ("1,,0132,TRAFFIC,end,2562,,192.0.2.1", "bad_timestamp"),
    ],
)
def test_errors(line: str, error_type: str) -> None:
    with pytest.raises(ParseError) as info:
        parse_line(line)
    assert info.value.error_type == error_type


def test_oversized_message() -> None:
    with pytest.raises(ParseError) as info:
        parse_line(b"1," * 200_000)
    assert info.value.error_type == "oversized"


def test_log_types_are_read_by_their_own_layout() -> None:
    rec = parse_line(
        "1,2026/11/27 10:00:02,013201000001,CONFIG,0,2562,2026/11/27 10:00:02,192.0.2.50,,set,admin"
    )
    assert (rec["type"], rec["host"], rec["cmd"], rec["admin"]) == (
        "CONFIG",
        "192.0.2.50",
        "set",
        "admin",
    )


@pytest.mark.parametrize(
    ("spelling", "name"), [("HIP-MATCH", "HIPMATCH"), ("AUTH", "AUTHENTICATION")]
)
def test_other_spellings_of_a_log_type(spelling: str, name: str) -> None:
    rec = parse_line(f"1,2026/11/27 10:00:02,013201000001,{spelling},0,2562,2026/11/27 10:00:02")
    assert rec["type"] == name


CONFIG_DEFAULT = (
    "1,2026/11/27 10:00:02,013201000001,CONFIG,0,2562,2026/11/27 10:00:02,192.0.2.50,vsys1,edit,"
    "admin,Web,Succeeded, vsys  vsys1 address  a1,131,0x0,0,0,0,0,,fw-edge-01,0,,0,"
    '2026-11-27T10:00:02.421+01:00,"a1 { ip-netmask 192.0.2.1; } ","a1 { ip-netmask 192.0.2.2; } "'
)
CONFIG_CUSTOM = (
    "1,2026/11/27 10:00:02,013201000001,CONFIG,0,2562,2026/11/27 10:00:02,192.0.2.50,vsys1,edit,"
    'admin,Web,Succeeded, vsys  vsys1 address  a1,"a1 { ip-netmask 192.0.2.1; } ",'
    '"a1 { ip-netmask 192.0.2.2; } ",131,0x0,0,0,0,0,,fw-edge-01,0,,0,2026-11-27T10:00:02.421+01:00'
)


@pytest.mark.parametrize("line", [CONFIG_DEFAULT, CONFIG_CUSTOM])
def test_config_default_and_custom_formats(line: str) -> None:
    rec = parse_line(line)
    assert rec["seqno"] == 131 and rec["actionflags"] == 0
    assert rec["before_change_detail"] == "a1 { ip-netmask 192.0.2.1; } "
    assert rec["after_change_detail"] == "a1 { ip-netmask 192.0.2.2; } "
    assert rec["device_name"] == "fw-edge-01"
    assert "_invalid" not in rec and "_extra" not in rec


def test_meta_keys() -> None:
    line = "<14>Nov 27 10:00:01 fw-edge-01 " + make_line("TRAFFIC", "2562", 115)
    rec = parse_line(line.encode())
    assert rec["_format"] == "csv"
    assert rec["_host"] == "fw-edge-01"
    assert rec["_syslog_time"] == "Nov 27 10:00:01"
    assert rec["_original"] == line.split(" ", 4)[4]
    assert rec["_message"] == line
