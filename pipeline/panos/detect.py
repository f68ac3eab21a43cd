"""Which rendering a message body is: csv, cef, leef, json or session (``show session id``)."""

from __future__ import annotations

from pipeline.panos.session_text import looks_like_session

FORMATS = ("csv", "cef", "leef", "json", "session")


def detect(body: str) -> str:
    if body.startswith("CEF:"):
        return "cef"
    if body.startswith("LEEF:"):
        return "leef"
    if body.startswith("{"):
        return "json"
    first = body[:1]
    # A CSV log starts with its FUTURE_USE digit; anything else may be CLI output.
    if not first.isdigit() and looks_like_session(body):
        return "session"
    return "csv"
