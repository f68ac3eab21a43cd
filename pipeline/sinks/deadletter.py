"""Dead letters: what the pipeline could not process, with the reason, as plain data.

The value of a ``panos.dlq`` message is the JSON of ``dead_letter(...)``: the original bytes
(text when UTF-8, else base64 in ``original_b64``), where it came from (topic, partition,
offset), the stage and bounded ``error_type`` of the failure, a message, the pipeline version
and the time. Pure: the agents send what this builds.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any

import orjson

from pipeline import __version__

# The part of an over-long original kept in a dead letter (the DLQ is for reading, not storage).
MAX_ORIGINAL_BYTES = 256 * 1024


def dead_letter(
    original: bytes | str | None,
    *,
    stage: str,
    error_type: str,
    message: str,
    topic: str | None = None,
    partition: int | None = None,
    offset: int | None = None,
    time: datetime | None = None,
) -> dict[str, Any]:
    """The dead letter for ``original`` that failed at ``stage`` with ``error_type``."""
    letter: dict[str, Any] = {}
    if isinstance(original, str):
        letter["original"] = original[:MAX_ORIGINAL_BYTES]
    elif original is not None:
        raw = bytes(original[:MAX_ORIGINAL_BYTES])
        try:
            letter["original"] = raw.decode("utf-8")
        except UnicodeDecodeError:
            letter["original_b64"] = base64.b64encode(raw).decode("ascii")
    else:
        letter["original"] = None
    letter.update(
        topic=topic,
        partition=partition,
        offset=offset,
        stage=stage,
        error_type=error_type,
        message=message,
        pipeline_version=__version__,
        time=(time or datetime.now(UTC)).isoformat(),
    )
    return letter


def from_error(
    original: bytes | str | None,
    error: BaseException,
    *,
    stage: str | None = None,
    topic: str | None = None,
    partition: int | None = None,
    offset: int | None = None,
) -> dict[str, Any]:
    """A dead letter from an exception: the project's errors carry stage and error_type."""
    return dead_letter(
        original,
        stage=stage or getattr(error, "stage", "pipeline"),
        error_type=getattr(error, "error_type", type(error).__name__),
        message=str(error) or type(error).__name__,
        topic=topic,
        partition=partition,
        offset=offset,
    )


def encode(letter: dict[str, Any]) -> bytes:
    return orjson.dumps(letter)


def original_bytes(letter: dict[str, Any]) -> bytes:
    """The original message of a dead letter, as bytes (for replaying it)."""
    if letter.get("original_b64"):
        return base64.b64decode(letter["original_b64"])
    return (letter.get("original") or "").encode("utf-8")
