"""A protocol error where the server refused the firewall's own Client_Hello: the advice
starts with that case (the server rejects what the firewall offers), built from the real
Sekoia JSON line of that shape (client leg Finished, server leg Client_Hello, DecodeError
from server)."""

from __future__ import annotations

from pathlib import Path

from pipeline.diagnosis import classify
from pipeline.panos import parse_line

GOLDEN = Path(__file__).resolve().parent.parent / "golden"


def test_server_rejecting_the_firewalls_client_hello_is_said_first() -> None:
    line = (GOLDEN / "sample-sekoia-decryption-json.log").read_text(encoding="utf-8")
    record = parse_line(line.splitlines()[1])
    assert (record["hs_stage_c2f"], record["hs_stage_f2s"]) == ("Finished", "Client_Hello")
    assert record["error"].endswith("DecodeError from server")
    diagnosis = classify(record)
    assert diagnosis is not None and diagnosis.cause == "tls-protocol-error"
    first = diagnosis.remediation.split(".")[0]
    assert "server answered the firewall's own Client_Hello" in " ".join(first.split())
    assert "Decryption profile" in diagnosis.remediation.split("Otherwise")[0]
