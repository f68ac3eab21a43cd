"""The layout files are data: check they are consistent and that bad files are refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.errors import ConfigError
from pipeline.panos.layouts import (
    LAYOUT_DIR,
    SKIP,
    config_versions,
    key_map,
    layouts,
    load_layout,
    session_labels,
)

EXPECTED_COLUMNS = {"DECRYPTION": 108, "TRAFFIC": 130, "THREAT": 123, "SYSTEM": 26}


def test_every_layout_names_its_source_and_known_lengths() -> None:
    found = layouts()
    for log_type, count in EXPECTED_COLUMNS.items():
        layout = found[log_type]
        assert len(layout.columns) == count
        header = layout.source.read_text(encoding="utf-8").splitlines()[:3]
        assert any("https://docs.paloaltonetworks.com/" in line for line in header)


def _keys(text: str) -> list[str]:
    return text.split()


def test_contract_keys_exist() -> None:
    dec = set(layouts()["DECRYPTION"].names)
    for key in _keys(
        "receive_time serial type subtype config_ver time_generated src dst natsrc natdst rule "
        "srcuser dstuser app vsys from to inbound_if outbound_if logset sessionid repeatcnt sport "
        "dport natsport natdport flags proto action hs_stage_c2f hs_stage_f2s tls_version "
        "tls_keyxchg tls_enc tls_auth policy_name ec_curve err_index root_status chain_status "
        "proxy_type cert_serial fingerprint notbefore notafter cert_ver cert_size cert_flags cn "
        "issuer_cn root_cn sni error high_res_timestamp seqno actionflags device_name"
    ):
        assert key in dec, key
    traffic = set(layouts()["TRAFFIC"].names)
    for key in _keys(
        "bytes bytes_sent bytes_received packets start elapsed category seqno actionflags srcloc "
        "dstloc pkts_sent pkts_received session_end_reason device_name action_source "
        "high_res_timestamp"
    ):
        assert key in traffic, key


def test_positions_match_the_reference_table() -> None:
    dec = layouts()["DECRYPTION"].names
    assert (dec[22], dec[37], dec[45], dec[64], dec[72], dec[89], dec[104]) == (
        "sessionid",
        "hs_stage_c2f",
        "err_index",
        "error",
        "high_res_timestamp",
        "seqno",
        "tunneled_app",
    )
    traffic = layouts()["TRAFFIC"].names
    assert (traffic[46], traffic[52], traffic[69], traffic[102], traffic[114]) == (
        "session_end_reason",
        "device_name",
        "link_switches",
        "high_res_timestamp",
        "offloaded",
    )


def test_release_lengths() -> None:
    dec = layouts()["DECRYPTION"]
    assert dec.length_for("10.0") == 91
    assert dec.length_for("10.2") == 107
    assert dec.length_for("11.0") == 107  # between two known releases: the older layout
    assert dec.version_for_count(106) == ("10.1", 106)
    assert dec.version_for_count(5) == ("10.0", 91)


def test_config_versions() -> None:
    versions = config_versions()
    assert versions["2561"] == "10.1"
    assert versions["2816"] == "11.0"


def test_key_maps_point_at_layout_keys() -> None:
    known = {n for layout in layouts().values() for n in layout.names if n != SKIP}
    for fmt in ("cef", "leef", "json"):
        for key, name in key_map(fmt).items():
            assert name in known, (fmt, key, name)
    assert session_labels()["tracker stage firewall"][0] == "tracker_stage_firewall"


def _write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "x.csv"
    path.write_text("# test\nname,target,type,since,title\n" + body, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("a,,nosuchtype,1.0,A\n", "unknown type"),
        ("a,,str,1.0,A\na,,str,1.0,A\n", "appears twice"),
        ("a,,str,2.0,A\nb,,str,1.0,B\n", "older than"),
        ("a,,str,one,A\n", "bad PAN-OS version"),
    ],
)
def test_bad_layout_files_are_refused(tmp_path: Path, body: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_layout(_write(tmp_path, body))


def test_layout_dir_is_the_schema_dir() -> None:
    assert LAYOUT_DIR.name == "panos" and (LAYOUT_DIR / "decryption.csv").exists()
