"""``decryptscope diagnose`` and ``decryptscope analyze`` through the real command line."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest

from pipeline import cli

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "diagnosis"
KB = GOLDEN / "inbound-proxy-handshake-failure.log"
KB_JA = GOLDEN / "inbound-proxy-handshake-failure-ja.log"


def run(capsys, *argv, stdin: str | None = None, monkeypatch=None):
    if stdin is not None:
        monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(stdin.encode())))
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("path", [KB, KB_JA], ids=["en", "ja"])
def test_kb_session_output_names_the_inbound_proxy_failure_and_its_checks(capsys, path):
    code, out, err = run(capsys, "diagnose", str(path))
    assert code == 0, err
    assert "inbound-proxy-handshake-failure" in out
    assert "SSL Inbound Inspection (proxy mode)" in out
    assert "tracker_stage_firewall = 'proxy decrypt failure'" in out
    assert "end reason: policy-deny" in out
    for check in (
        "Cipher suites",
        "EC curves",
        "Certificate chain",
        "Client-certificate requests",
        "Client-certificate authentication",
        "Client alerts",
    ):
        assert check in out
    assert "kA10g000000Cm5iCAC" in out


def test_diagnose_reads_stdin(capsys, monkeypatch):
    text = KB.read_text(encoding="utf-8")
    code, out, _ = run(capsys, "diagnose", "-", stdin=text, monkeypatch=monkeypatch)
    assert code == 0 and "inbound-proxy-handshake-failure" in out


def test_diagnose_json(capsys):
    code, out, _ = run(capsys, "diagnose", "--json", str(GOLDEN / "decrypt-error-joined.log"))
    assert code == 0
    verdicts = json.loads(out)["verdicts"]
    assert [v["type"] for v in verdicts] == ["TRAFFIC", "DECRYPTION"]
    for v in verdicts:
        assert v["failure"] is True
        assert v["diagnosis"]["cause"] == "client-rejected-firewall-cert"
        assert set(v["diagnosis"]) == {
            "cause",
            "category",
            "mode",
            "confidence",
            "evidence",
            "remediation",
            "references",
        }
    assert verdicts[0]["joined"] == ["DECRYPTION"]


def test_diagnose_non_failure(capsys):
    code, out, _ = run(capsys, "diagnose", str(GOLDEN / "none-tcp-fin.log"))
    assert code == 0
    assert "not a decryption failure" in out
    code, out, _ = run(
        capsys, "diagnose", "--json", str(GOLDEN / "none-appid-policy-deny-session.log")
    )
    assert json.loads(out)["verdicts"][0]["failure"] is False


@pytest.mark.parametrize(
    "garbage", ["hello world\nthis is not a firewall\n", "", "# only a comment\n"]
)
def test_diagnose_garbage_exits_2(capsys, monkeypatch, garbage):
    code, out, err = run(capsys, "diagnose", "-", stdin=garbage, monkeypatch=monkeypatch)
    assert code == 2
    assert out == ""
    assert "not recognised" in err or "empty input" in err


def test_diagnose_missing_file(capsys, tmp_path):
    code, _, err = run(capsys, "diagnose", str(tmp_path / "absent.txt"))
    assert code == 1 and "cannot read" in err


@pytest.fixture
def logfile(tmp_path):
    lines = []
    for path in sorted(GOLDEN.glob("*.log")):
        text = path.read_text(encoding="utf-8")
        if "show session id" not in text:
            lines += [ln for ln in text.splitlines() if not ln.startswith("#")]
    lines.append("this line is not a PAN-OS log")
    path = tmp_path / "fw.log"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_analyze_text(capsys, logfile):
    code, out, err = run(capsys, "analyze", str(logfile))
    assert code == 0, err
    assert "Failures by cause" in out
    assert "client-rejected-firewall-cert" in out
    assert "not parsed     1" in out
    assert re.search(r"correlated\s+2 sessions", out)
    assert "what to do:" in out
    assert "\r" not in err  # no progress bar when stderr is not a terminal


def test_analyze_json(capsys, logfile):
    code, out, _ = run(capsys, "analyze", "--json", str(logfile))
    assert code == 0
    report = json.loads(out)
    assert report["inputs"] == [str(logfile)]
    assert report["failures"]["sessions"] >= 20
    assert report["correlation"]["sessions_correlated"] == 2
    causes = {c["cause"] for c in report["causes"]}
    assert {"client-rejected-firewall-cert", "unsupported-cipher", "server-cert-expired"} <= causes
    assert abs(sum(c["share"] for c in report["causes"]) - 1.0) < 1e-9


def test_analyze_html_is_one_self_contained_page(capsys, logfile, tmp_path):
    target = tmp_path / "report.html"
    code, _, err = run(capsys, "analyze", "--html", str(target), str(logfile))
    assert code == 0 and "wrote" in err
    page = target.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>")
    assert "{{" not in page  # every placeholder filled
    assert "<svg" in page and "<rect data-cause=" in page
    assert "<style>" in page and "<script>" in page
    # nothing is loaded from elsewhere: no external scripts, styles, images or fonts
    assert not re.search(r"<(script|img|iframe)[^>]+src=", page)
    assert "<link" not in page and "@import" not in page and "url(" not in page
    assert "client-rejected-firewall-cert" in page and "SSL Decryption Exclusion" in page


def test_analyze_gzip(capsys, logfile, tmp_path):
    import gzip

    gz = tmp_path / "fw.log.gz"
    gz.write_bytes(gzip.compress(logfile.read_bytes()))
    code, out, _ = run(capsys, "analyze", "--json", str(gz))
    assert code == 0 and json.loads(out)["records"] > 20


def test_diagnose_several_session_outputs_separated_by_comments(capsys, tmp_path):
    kb = KB.read_text(encoding="utf-8")
    tail = (
        "        egress interface                     : ethernet1/3\n"
        "        tracker stage firewall               : Aged out\n"
        "        end-reason                           : aged-out\n"
    )
    path = tmp_path / "outputs.txt"
    path.write_text(f"{kb}# another output, only its tail\n{tail}", encoding="utf-8")
    code, out, _ = run(capsys, "diagnose", "--json", str(path))
    assert code == 0
    verdicts = json.loads(out)["verdicts"]
    assert [v["failure"] for v in verdicts] == [True, False]
    assert verdicts[0]["diagnosis"]["cause"] == "inbound-proxy-handshake-failure"


def test_diagnose_brackets_ipv6_endpoints(capsys):
    # RFC 3986 / RFC 5952 section 6: an IPv6 address followed by a port is written in brackets.
    code, out, err = run(capsys, "diagnose", str(GOLDEN.parent / "decryption-ipv6.log"))
    assert code == 0, err
    assert "[2001:db8:10::5]:51000 -> [2001:db8:20::7]:443" in out.splitlines()[0]


def test_diagnose_keeps_ipv4_endpoints_unbracketed(capsys):
    code, out, err = run(capsys, "diagnose", str(GOLDEN / "unsupported-cipher.log"))
    assert code == 0, err
    assert "192.0.2.10:51544 -> 203.0.113.20:443" in out.splitlines()[0]
