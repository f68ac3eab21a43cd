"""The pure per-batch chain: documents, dead letters, state changes, counts; and the same verdict
for the same lines from the command line and the worker's batches."""

from __future__ import annotations

import io
from pathlib import Path

import orjson
import pytest

from pipeline.chain import Chain, ChainConfig, Message, run_all
from pipeline.commands.parse import write_documents
from pipeline.correlate import Sessions
from pipeline.settings import Settings

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "diagnosis"


def lines(case: str) -> list[bytes]:
    data = (GOLDEN / f"{case}.log").read_bytes().splitlines()
    return [x for x in data if x.strip() and not x.startswith(b"#")]


def expected_cause(case: str) -> str | None:
    return orjson.loads((GOLDEN / f"{case}.expected.json").read_bytes())["cause"]


def by_type(documents) -> dict[str, dict]:
    """The last version of each document, by log type."""
    return {d.doc_id.split(":")[1]: orjson.loads(d.source) for d in documents}


def test_parse_and_the_worker_give_the_same_verdict_for_a_joined_session() -> None:
    # The TRAFFIC line alone says only decrypt-error; its DECRYPTION line says why. The
    # command line now correlates like the worker: the TRAFFIC document's last version has
    # the session's cause.
    path = GOLDEN / "decrypt-error-joined.log"
    out, err = io.BytesIO(), io.StringIO()
    assert write_documents([str(path)], out, err, Settings()) == 0
    parsed = [orjson.loads(x) for x in out.getvalue().splitlines()]
    offline = {d["panw"]["panos"]["type"]: d["decryptscope"]["cause"] for d in parsed}
    # the worker: one message per batch (the hardest case), wall clock
    chain = Chain(ChainConfig())
    sessions = Sessions()
    streamed: dict[str, str] = {}
    for n, line in enumerate(lines("decrypt-error-joined")):
        result = run_all(chain, [Message(line)], sessions, 1000.0 + n)
        for doc in result.documents:
            streamed[doc.record["type"]] = doc.diagnosis.cause
    want = expected_cause("decrypt-error-joined")
    assert offline == streamed == {"TRAFFIC": want, "DECRYPTION": want}


def test_correlation_can_be_turned_off_offline() -> None:
    path = GOLDEN / "decrypt-error-joined.log"
    out = io.BytesIO()
    write_documents([str(path)], out, io.StringIO(), Settings(), correlate=False)
    causes = {
        d["panw"]["panos"]["type"]: d["decryptscope"]["cause"]
        for d in map(orjson.loads, out.getvalue().splitlines())
    }
    assert causes["TRAFFIC"] == "decrypt-error"  # what the TRAFFIC line alone says


def test_a_batch_carries_each_document_once_in_its_latest_version() -> None:
    traffic, decryption = lines("decrypt-error-joined")
    result = Chain(ChainConfig()).run([Message(traffic), Message(decryption)], {}, 0.0)
    assert [d.record["type"] for d in result.documents] == ["TRAFFIC", "DECRYPTION"]
    assert result.documents[0].diagnosis.cause == expected_cause("decrypt-error-joined")
    assert result.documents[0].message == 1  # the version the DECRYPTION line produced
    assert result.documents[0].session == result.documents[1].session
    # the same message twice (a replay): two documents with one id, as Elasticsearch sees it
    again = Chain(ChainConfig()).run([Message(decryption), Message(decryption)], {}, 0.0)
    assert len(again.documents) == 2
    assert again.documents[0].doc_id == again.documents[1].doc_id


def test_state_is_written_once_per_session_and_only_where_a_join_can_happen() -> None:
    traffic, decryption = lines("decrypt-error-joined")
    quiet = (
        lines("none-successful-handshake")
        + lines("none-tcp-fin")
        + lines("none-aged-out")
        + lines("none-no-decrypt")
    )
    result = Chain(ChainConfig()).run([Message(x) for x in [*quiet, traffic, decryption]], {}, 0.0)
    assert list(result.state) == ["012801096514:1026"]
    assert result.writers == {"012801096514:1026": len(quiet) + 1}
    assert len(result.state["012801096514:1026"]["slots"]) == 2
    assert result.counts.joined == 1


def test_a_live_entry_in_state_is_joined_and_an_expired_one_is_not() -> None:
    traffic, decryption = lines("decrypt-error-joined")
    chain = Chain(ChainConfig(window_s=60))
    first = chain.run([Message(decryption)], {}, 100.0)
    state = dict(first.state)
    joined = chain.run([Message(traffic)], state, 130.0)
    assert joined.documents[0].diagnosis.cause == expected_cause("decrypt-error-joined")
    alone = chain.run([Message(traffic)], state, 161.0)
    assert alone.documents[0].diagnosis.cause == "decrypt-error"


def test_dead_letters_keep_their_origin_and_leave_no_state() -> None:
    good = lines("server-cert-expired")[0]
    messages = [
        Message(b"<14>Nov 20 10:15:03 fw hello", "panos.raw", 3, 41),
        Message(good, "panos.raw", 3, 42),
        Message(b"<14>Nov 20 10:15:03 fw 1,2026", "panos.raw", 3, 43, cut="65536"),
    ]
    result = Chain(ChainConfig()).run(messages, {}, 0.0)
    assert [p for p, _ in result.dead_letters] == [0, 2]
    first, cut = (letter for _, letter in result.dead_letters)
    assert (first["stage"], first["offset"], first["partition"]) == ("parse", 41, 3)
    assert cut["error_type"] == "oversized"
    assert result.counts.dead_letters == {("parse", "not_panos"): 1, ("framing", "oversized"): 1}
    assert len(result.documents) == 1


def test_an_unexpected_exception_is_an_internal_error_named_by_its_step() -> None:
    class Broken:
        catalogue = Chain(ChainConfig()).classifier.catalogue

        def classify(self, record, related=()):
            raise ZeroDivisionError("boom")

    chain = Chain(ChainConfig(correlate=False), classifier=Broken())  # type: ignore[arg-type]
    result = chain.run([Message(lines("server-cert-expired")[0])], {}, 0.0)
    [(_, letter)] = result.dead_letters
    assert (letter["stage"], letter["error_type"]) == ("diagnose", "internal")
    assert "ZeroDivisionError" in letter["message"]
    assert not result.state and not result.documents


def test_counts_failures_and_the_event_clock() -> None:
    messages = [Message(x) for x in lines("decrypt-error-joined") + lines("none-tcp-fin")]
    result = Chain(ChainConfig(event_time=True)).run(messages, {}, 0.0)
    counts = result.counts
    assert counts.records == {"TRAFFIC": 2, "DECRYPTION": 1}
    assert counts.end_reasons == {"decrypt-error": 1, "tcp-fin": 1}
    causes = sorted(f.cause for f in result.failures)
    assert causes == sorted(["decrypt-error", expected_cause("decrypt-error-joined")])
    assert all(f.event_id.startswith("012801096514:") for f in result.failures)
    assert result.clock > 1.7e9  # the records' own time, not the 0.0 it started from
    assert len(counts.parse_seconds) == 1  # one message in 16 is timed


@pytest.mark.parametrize("case", ["unsupported-cipher-inbound-policy-deny", "decrypt-error-joined"])
def test_every_arrival_order_gives_the_same_final_verdict(case: str) -> None:
    two = lines(case)
    finals = []
    for order in (two, two[::-1]):
        sessions = Sessions()
        chain = Chain(ChainConfig(event_time=True))
        latest: dict[str, str | None] = {}
        for line in order:
            for doc in run_all(chain, [Message(line)], sessions).documents:
                latest[doc.record["type"]] = doc.diagnosis.cause if doc.diagnosis else None
        finals.append(latest)
    assert finals[0] == finals[1]
    assert set(finals[0].values()) == {expected_cause(case)}
