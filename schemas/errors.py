"""Errors raised by the schema package.

::

    SchemaError
    ├── DecodeError          a record is not a valid event of the expected type
    │   └── UnknownEventType no model is registered for the record's ce_type/dataschema
    └── RecordTooLarge       an encoded record exceeds the configured maximum size
"""

from __future__ import annotations


class SchemaError(Exception):
    """Base of every error raised by ``schemas``."""


class DecodeError(SchemaError):
    """A record could not be decoded into a valid event.

    ``field`` names the offending header or payload field (dotted path) when known, and
    ``problem`` says what is wrong with it.
    """

    def __init__(self, message: str, *, field: str | None = None, problem: str | None = None):
        super().__init__(message)
        self.field = field
        self.problem = problem or message


class UnknownEventType(DecodeError):
    """The record's ``ce_type``/``ce_dataschema`` names no registered event model."""


class RecordTooLarge(SchemaError):
    """An encoded record is larger than the broker's ``max.message.bytes`` allows."""

    def __init__(self, size: int, limit: int, *, event_id: str, event_type: str):
        super().__init__(
            f"record for event {event_id} ({event_type}) is {size} bytes, "
            f"over the {limit}-byte limit (max.message.bytes)"
        )
        self.size = size
        self.limit = limit
