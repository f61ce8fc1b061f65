"""Event <-> Kafka record, in CloudEvents binary content mode. Imports no Kafka client.

Context attributes travel as ``ce_*`` headers (``content-type`` for datacontenttype), the
payload as the JSON value and the subject (the lead's identity key) as the record key. The
official CloudEvents SDK's Kafka binding and ``kcat`` read these records as they are.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import orjson
from pydantic import ValidationError

from schemas.base import Payload
from schemas.catalog import UPCASTERS, payload_for
from schemas.envelope import Envelope, envelope_of
from schemas.errors import DecodeError, RecordTooLarge, UnknownEventType

P = TypeVar("P", bound=Payload)

#: Kafka's default max.message.bytes is 1,048,588; stay under it with room for overhead.
DEFAULT_MAX_RECORD_BYTES = 1_000_000

Headers = list[tuple[str, bytes]]

_ATTRS = ("specversion", "id", "source", "type", "time", "subject", "dataschema")
_EXTENSIONS = ("correlationid", "synthetic")


@dataclass(frozen=True, slots=True)
class Record:
    """A Kafka record as bytes: key, value and headers."""

    key: bytes
    value: bytes
    headers: Headers

    @property
    def size(self) -> int:
        return len(self.key) + len(self.value) + sum(len(k) + len(v) for k, v in self.headers)

    def header(self, name: str) -> bytes | None:
        for k, v in self.headers:
            if k == name:
                return v
        return None


def _fmt_time(value: datetime) -> str:
    text = value.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def encode(event: Envelope[Any], *, max_bytes: int = DEFAULT_MAX_RECORD_BYTES) -> Record:
    """Serialise an event; raises ``RecordTooLarge`` when it would exceed ``max_bytes``."""
    headers: Headers = [
        ("ce_specversion", b"1.0"),
        ("ce_id", event.id.encode()),
        ("ce_source", event.source.encode()),
        ("ce_type", event.type.encode()),
        ("ce_time", _fmt_time(event.time).encode()),
        ("ce_subject", event.subject.encode()),
        ("ce_dataschema", event.dataschema.encode()),
        ("content-type", event.datacontenttype.encode()),
    ]
    if event.correlationid:
        headers.append(("ce_correlationid", event.correlationid.encode()))
    if event.synthetic:
        headers.append(("ce_synthetic", b"true"))
    record = Record(key=event.subject.encode(), value=event.data.model_dump_json().encode(), headers=headers)
    if record.size > max_bytes:
        raise RecordTooLarge(record.size, max_bytes, event_id=event.id, event_type=event.type)
    return record


def _header_map(headers: Iterable[tuple[str, bytes]] | Mapping[str, bytes] | None) -> dict[str, str]:
    items = headers.items() if isinstance(headers, Mapping) else (headers or ())
    out: dict[str, str] = {}
    for name, raw in items:
        lname = name.lower()
        if lname.startswith("ce_") or lname == "content-type":
            try:
                out[lname] = raw.decode() if isinstance(raw, (bytes, bytearray)) else str(raw)
            except UnicodeDecodeError as exc:
                raise DecodeError(f"header {name}: not UTF-8", field=name, problem="not UTF-8") from exc
    return out


def _first_error(exc: ValidationError, prefix: str) -> tuple[str, str, str]:
    errors = exc.errors(include_url=False)
    parts = []
    for err in errors:
        loc = ".".join(str(p) for p in (prefix, *err["loc"]) if p != "")
        parts.append(f"{loc}: {err['msg']}")
    first = errors[0]
    field = ".".join(str(p) for p in (prefix, *first["loc"]) if p != "")
    return "; ".join(parts), field, first["msg"]


def decode(
    value: bytes | None,
    headers: Iterable[tuple[str, bytes]] | Mapping[str, bytes] | None,
    expected: type[P] | None = None,
) -> Envelope[Any]:
    """Decode a record into an envelope with a validated payload.

    ``expected`` restricts the payload model (a record of another type is a ``DecodeError``).
    Old versions with a registered upcaster are upcast to the newest model.
    """
    attrs = _header_map(headers)
    for name in ("ce_id", "ce_type", "ce_source", "ce_dataschema", "ce_subject", "ce_time"):
        if not attrs.get(name):
            raise DecodeError(f"header {name}: missing", field=name, problem="missing")
    if attrs.get("ce_specversion") != "1.0":
        got = attrs.get("ce_specversion")
        raise DecodeError(
            f"header ce_specversion: expected 1.0, got {got!r}", field="ce_specversion", problem="unsupported"
        )
    if value is None:
        raise DecodeError("data: record has no value", field="data", problem="missing")

    dataschema = attrs["ce_dataschema"]
    model = payload_for(dataschema)
    raw_payload: Any = value
    if model is None and dataschema in UPCASTERS:
        model, upcast = UPCASTERS[dataschema]
        try:
            raw_payload = upcast(orjson.loads(value))
        except orjson.JSONDecodeError as exc:
            raise DecodeError(f"data: not JSON ({exc})", field="data", problem="not JSON") from exc
    if model is None:
        raise UnknownEventType(
            f"header ce_dataschema: no event model for {dataschema!r}", field="ce_dataschema", problem="unknown"
        )
    if expected is not None and model is not expected:
        raise DecodeError(
            f"header ce_dataschema: expected {expected.dataschema()}, got {dataschema}",
            field="ce_dataschema",
            problem="unexpected event type",
        )
    try:
        if isinstance(raw_payload, bytes):
            payload = model.model_validate_json(raw_payload)
        else:
            payload = model.model_validate(raw_payload)
    except ValidationError as exc:
        message, field, problem = _first_error(exc, "data")
        raise DecodeError(message, field=field, problem=problem) from exc
    try:
        return envelope_of(model).model_validate(
            {
                "specversion": attrs["ce_specversion"],
                "id": attrs["ce_id"],
                "source": attrs["ce_source"],
                "type": attrs["ce_type"],
                "time": attrs["ce_time"],
                "subject": attrs["ce_subject"],
                "dataschema": model.dataschema(),
                "datacontenttype": attrs.get("content-type", "application/json"),
                "correlationid": attrs.get("ce_correlationid"),
                "synthetic": attrs.get("ce_synthetic") == "true",
                "data": payload,
            }
        )
    except ValidationError as exc:
        message, field, problem = _first_error(exc, "")
        raise DecodeError(message, field=field, problem=problem) from exc


def decode_record(record: Record, expected: type[P] | None = None) -> Envelope[Any]:
    return decode(record.value, record.headers, expected)
