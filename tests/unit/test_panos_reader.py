"""Reading files: grouping lines into messages, gzip, and the ``decryptscope parse`` command."""

from __future__ import annotations

import gzip
import subprocess
import sys
from pathlib import Path

import orjson

from pipeline.errors import ParseError
from pipeline.panos.reader import iter_events, iter_records

GOLDEN = Path(__file__).resolve().parent.parent / "golden"
DEC = (GOLDEN / "sample-elastic-decryption.log").read_text(encoding="utf-8").splitlines()[1]


def test_iter_events_groups_session_outputs() -> None:
    lines = (GOLDEN / "sample-kb-show-session-id.log").read_text(encoding="utf-8").splitlines()
    events = list(iter_events(lines))
    assert [n for n, _ in events] == [6, 54, 88, 96]
    assert events[0][1].splitlines()[1] == "Session 318075"


def test_iter_events_keeps_a_session_output_with_blank_lines_whole() -> None:
    # The Japanese KB edition pads its sections with blank lines.
    path = GOLDEN / "diagnosis" / "inbound-proxy-handshake-failure-ja.log"
    lines = path.read_text(encoding="utf-8").splitlines()
    events = list(iter_events(lines))
    assert [n for n, _ in events] == [2]
    text = events[0][1]
    assert text.splitlines()[0] == "admin@firewall> show session id 318075"
    assert text.rstrip().endswith("end-reason                           : policy-deny")
    ((_, record),) = list(iter_records(lines))
    assert record["type"] == "SESSION"
    assert record["sessionid"] == 318075
    assert (record["src"], record["natdst"], record["natdport"]) == (
        "200.0.0.1",
        "192.168.1.100",
        25,
    )
    assert record["tracker_stage_firewall"] == "proxy decrypt failure"
    assert record["session_end_reason"] == "policy-deny"


def test_iter_events_ends_a_session_output_at_the_next_output_or_log_line() -> None:
    first = ["> show session id 1", "", "Session 1", "", "  c2s flow:", "    source: 192.0.2.1"]
    second = ["Session 2", "", "  end-reason : aged-out"]
    events = list(iter_events([*first, "", *second, "", "", DEC, "Session 3", "", ""]))
    assert [n for n, _ in events] == [1, 8, 13, 14]
    assert events[0][1] == "\n".join(first)
    assert events[1][1] == "\n".join(second)
    assert events[2][1] == DEC
    assert events[3][1] == "Session 3"


def test_iter_events_skips_blank_and_comment_lines() -> None:
    events = list(iter_events(["# c", "", DEC, "  ", DEC]))
    assert [n for n, _ in events] == [3, 5]


def test_iter_records_yields_errors_and_goes_on() -> None:
    results = list(iter_records([b"garbage", DEC.encode(), b"\xff\xfe"]))
    assert isinstance(results[0][1], ParseError)
    assert results[1][1]["type"] == "DECRYPTION"
    assert isinstance(results[2][1], ParseError)


def _run(*args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "pipeline", "parse", *args],
        input=stdin,
        capture_output=True,
        check=False,
        timeout=60,
    )


def test_parse_command_writes_ndjson_and_errors(tmp_path: Path) -> None:
    path = tmp_path / "mixed.log.gz"
    with gzip.open(path, "wb") as fh:
        fh.write(f"{DEC}\nnot a log\n{DEC}\n".encode())
    done = _run(str(path))
    assert done.returncode == 0
    docs = [orjson.loads(line) for line in done.stdout.splitlines()]
    assert len(docs) == 2
    assert docs[0]["network"]["community_id"] == "1:25YeIgDPUoi6wutrn+CXsDJ9eSY="
    assert docs[0]["decryptscope"]["failure"] is True  # the diagnosis is applied
    errors = [orjson.loads(line) for line in done.stderr.splitlines()]
    assert errors == [
        {
            "file": str(path),
            "line": 2,
            "error_type": "not_panos",
            "message": "not a PAN-OS CSV log (no log type in column 4)",
        }
    ]
    assert _run("--strict", str(path)).returncode == 1


def test_parse_command_reads_stdin() -> None:
    done = _run("-", stdin=(DEC + "\n").encode())
    assert done.returncode == 0
    assert orjson.loads(done.stdout)["panw"]["panos"]["type"] == "DECRYPTION"


def test_parse_command_unreadable_file(tmp_path: Path) -> None:
    done = _run(str(tmp_path / "missing.log"))
    assert done.returncode == 1
    assert b"cannot read" in done.stderr and b"missing.log" in done.stderr
