"""Dead-letter records: the original record, untouched, plus the error in headers.

A dead-lettered record keeps its key, value and ``ce_*`` headers so that ``leadpipe dlq
replay`` can re-publish it to its original topic as it was.
"""

from __future__ import annotations

from datetime import UTC, datetime

from schemas.codec import Headers, Record

ERROR_HEADERS = (
    "dlq_error",
    "dlq_error_field",
    "dlq_error_type",
    "dlq_topic",
    "dlq_partition",
    "dlq_offset",
    "dlq_service",
    "dlq_failed_at",
)


def dead_letter(
    *,
    key: bytes | None,
    value: bytes | None,
    headers: Headers,
    error: BaseException | str,
    topic: str,
    partition: int,
    offset: int,
    service: str,
    field: str | None = None,
) -> Record:
    """The record to publish to ``<topic>.dlq`` for a record that could not be handled."""
    message = str(error)[:4000]
    error_type = type(error).__name__ if isinstance(error, BaseException) else "Error"
    field = field or getattr(error, "field", None)
    kept = [(k, v) for k, v in headers if not k.startswith("dlq_")]
    extra: Headers = [
        ("dlq_error", message.encode()),
        ("dlq_error_type", error_type.encode()),
        ("dlq_topic", topic.encode()),
        ("dlq_partition", str(partition).encode()),
        ("dlq_offset", str(offset).encode()),
        ("dlq_service", service.encode()),
        ("dlq_failed_at", datetime.now(UTC).isoformat().encode()),
    ]
    if field:
        extra.append(("dlq_error_field", field.encode()))
    return Record(key=key or b"", value=value or b"", headers=kept + extra)


def original(record: Record) -> tuple[str, Record]:
    """The original topic and record of a dead-lettered record, ready to replay."""
    topic = record.header("dlq_topic")
    if topic is None:
        raise ValueError("not a dead-letter record: header dlq_topic is missing")
    headers = [(k, v) for k, v in record.headers if not k.startswith("dlq_")]
    return topic.decode(), Record(key=record.key, value=record.value, headers=headers)
