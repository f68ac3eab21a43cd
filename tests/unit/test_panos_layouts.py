"""The layout files are data: check they are consistent and that bad files are refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.errors import ConfigError
from pipeline.panos.layouts import (
    LAYOUT_DIR,
    SKIP,
    config_versions,
    flag_bits,
    key_map,
    layout_variants,
    layouts,
    load_layout,
    log_types,
    session_labels,
)

EXPECTED_COLUMNS = {"DECRYPTION": 108, "TRAFFIC": 130, "THREAT": 123, "SYSTEM": 26}
# Columns of the format strings of the Syslog Field Descriptions (release of the page): counted
# by hand from the docs, not from the layout files.
DOCUMENTED_COLUMNS = {
    ("USERID", "11.0"): 37,
    ("AUTHENTICATION", "11.0"): 47,
    ("HIPMATCH", "10.2"): 31,
    ("GLOBALPROTECT", "11.0"): 50,
    ("IPTAG", "10.2"): 26,
    ("CORRELATION", "10.0"): 22,
    ("TUNNEL", "11.1"): 84,
    ("GTP", "10.0"): 84,
    ("SCTP", "10.2"): 65,
    ("CONFIG", "10.0"): 26,  # 10.1+ logs add Before/After Change Detail at the end
}


def test_every_layout_names_its_source_and_known_lengths() -> None:
    found = layouts()
    for log_type, count in EXPECTED_COLUMNS.items():
        layout = found[log_type]
        assert len(layout.columns) == count
        header = layout.source.read_text(encoding="utf-8").splitlines()[:3]
        assert any("https://docs.paloaltonetworks.com/" in line for line in header)


@pytest.mark.parametrize(("log_type", "release"), sorted(DOCUMENTED_COLUMNS))
def test_layouts_have_the_documented_columns(log_type: str, release: str) -> None:
    layout = layouts()[log_type]
    assert layout.length_for(release) == DOCUMENTED_COLUMNS[log_type, release]
    header = layout.source.read_text(encoding="utf-8").splitlines()[:3]
    assert any("https://docs.paloaltonetworks.com/" in line for line in header)


def test_config_custom_format_is_a_variant_with_the_details_after_the_path() -> None:
    [custom] = layout_variants()["CONFIG"]
    names = custom.names
    assert names[13:16] == ("path", "before_change_detail", "after_change_detail")
    assert len(names) == 28
    default = layouts()["CONFIG"].names
    assert default[13:15] == ("path", "seqno")
    assert set(default) == set(names)


def test_every_log_type_is_named_with_its_spellings_and_is_a_metric_label() -> None:
    from pipeline.metrics import LOG_TYPES

    types = log_types()
    assert set(layouts()) <= {t.name for t in types.values()}
    assert types["HIP-MATCH"].name == "HIPMATCH"
    assert types["AUTH"].name == "AUTHENTICATION"
    assert types["START"].name == types["END"].name == "TUNNEL"
    assert {t.name for t in types.values()} <= LOG_TYPES


def test_flag_bits_follow_the_docs() -> None:
    bits = {f.label: (f.bit, f.decrypted) for f in flag_bits()}
    # KB kA10g000000Cm1JCAS: 0x01000000 = decrypted by forward proxy.
    assert bits["decrypted_traffic"] == (0x01000000, True)
    assert bits["ssl_decrypted"] == (0x01000000, True)
    assert bits["nat_translated"] == (0x00400000, False)
    assert bits["decrypt_mirror"] == (0x00000400, True)


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
