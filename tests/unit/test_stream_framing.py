"""Cutting TCP/TLS syslog streams into messages (pipeline.syslog.octets)."""

from __future__ import annotations

from pipeline.syslog.octets import StreamFramer


def feed_all(framer: StreamFramer, chunks: list[bytes]) -> list[bytes]:
    out: list[bytes] = []
    for chunk in chunks:
        out.extend(framer.feed(chunk))
    return out + framer.flush()


def test_newline_framing_across_chunk_boundaries() -> None:
    data = b"<14>a one\n<14>b two\r\n<14>c three\n"
    for cut in range(1, len(data)):
        framer = StreamFramer(1024)
        assert feed_all(framer, [data[:cut], data[cut:]]) == [
            b"<14>a one",
            b"<14>b two",
            b"<14>c three",
        ]
        assert framer.mode == "lf"


def test_octet_counting_detected_and_split_anywhere() -> None:
    messages = [b"<14>first message", b"<14>second, with\nnewline inside", b"<14>x"]
    data = b"".join(b"%d %s" % (len(m), m) for m in messages)
    for cut in range(1, len(data)):
        framer = StreamFramer(1024)
        assert feed_all(framer, [data[:cut], data[cut:]]) == messages
        assert framer.mode == "octet"


def test_last_line_without_newline_is_kept_at_end_of_stream() -> None:
    framer = StreamFramer(1024)
    assert framer.feed(b"<14>one\n<14>two") == [b"<14>one"]
    assert framer.flush() == [b"<14>two"]


def test_oversized_newline_message_is_cut_and_counted() -> None:
    framer = StreamFramer(10)
    out = feed_all(framer, [b"<14>" + b"x" * 30, b"y" * 30 + b"\n<14>ok\n"])
    assert out == [b"<14>xxxxxx", b"<14>ok"]
    assert framer.truncated == 1


def test_oversized_octet_message_is_cut_and_rest_skipped() -> None:
    big = b"<14>" + b"z" * 50
    data = b"%d %s" % (len(big), big) + b"6 <14>ok"
    framer = StreamFramer(10)
    assert feed_all(framer, [data[:20], data[20:]]) == [big[:10], b"<14>ok"]
    assert framer.truncated == 1


def test_garbage_where_a_length_belongs_falls_back_to_newlines() -> None:
    framer = StreamFramer(1024)
    out = feed_all(framer, [b"5 <14>a", b"<14>not counted\n<14>next\n"])
    assert out[0] == b"<14>a"
    assert b"<14>next" in out
    assert framer.bad_frames == 1
