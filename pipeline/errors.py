"""The error tree. Each error carries a bounded ``error_type`` (a metric label and a dead-letter
field) and the ``stage`` of the pipeline it belongs to."""

from __future__ import annotations


class DecryptscopeError(Exception):
    """Base of every error the project raises on purpose."""

    error_type = "error"
    stage = "pipeline"

    def __init__(self, message: str, *, error_type: str | None = None) -> None:
        super().__init__(message)
        if error_type is not None:
            self.error_type = error_type

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else ""


class ConfigError(DecryptscopeError):
    """A setting or a data file (catalogue, layout) is wrong."""

    error_type = "config"
    stage = "config"


class StackError(DecryptscopeError):
    """A local server could not be fetched, started or stopped."""

    error_type = "stack"
    stage = "stack"


class FramingError(DecryptscopeError):
    """A syslog message could not be framed (oversized, truncated, not syslog)."""

    error_type = "framing"
    stage = "framing"


class ParseError(DecryptscopeError):
    """A log line could not be turned into a record.

    ``error_type`` is one of a closed set (see ``PARSE_ERROR_TYPES``)."""

    error_type = "parse"
    stage = "parse"


# Closed set of parse error types: these are metric label values and dead-letter fields.
PARSE_ERROR_TYPES = frozenset(
    {
        "empty",
        "encoding",
        "not_panos",
        "unknown_format",
        "too_few_columns",
        "bad_value",
        "bad_timestamp",
        "bad_serial",
        "unknown_log_type",
        "oversized",
        "parse",
        # an exception the parser did not expect: a bug, never bad input; the dead letter's
        # message names the exception class
        "internal",
    }
)


class NotRecognisedError(DecryptscopeError):
    """Text that is neither a PAN-OS log line nor a `show session id` output."""

    error_type = "not_recognised"
    stage = "diagnose"


class SinkError(DecryptscopeError):
    """Elasticsearch or Kafka rejected data for a reason a retry will not fix."""

    error_type = "sink"
    stage = "index"
