"""Event <-> Kafka record, in CloudEvents binary content mode. Imports no Kafka client.

Context attributes travel as ``ce_*`` headers (``content-type`` for datacontenttype), the
payload as the JSON value and the subject (the lead's identity key) as the record key. The
official CloudEvents SDK's Kafka binding and ``kcat`` read these records as they are.

Producers are strict, consumers tolerant (so a producer may be upgraded before its consumers):
payload models are closed, so nothing we build or encode carries a field the model does not
declare, and ``decode(..., strict=True)`` refuses one. A consumer decodes leniently (the
default): a payload of a known version that carries fields this release does not know (a newer
release added them: released versions only gain optional fields) decodes with those fields
dropped, and unknown values of the open enums (``schemas.base.OPEN_ENUMS``) follow the rule in
docs/contracts.md. Unknown ``ce_*`` extension headers are ignored. Older versions are upcast in
one place (``schemas.catalog.resolve``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from functools import cache
from typing import TYPE_CHECKING, Any, TypeVar

import orjson
from pydantic import TypeAdapter, ValidationError

from schemas.base import OPEN_ENUMS, Payload
from schemas.catalog import resolve
from schemas.envelope import Envelope, envelope_of
from schemas.errors import DecodeError, RecordTooLarge, UnknownEventType
from schemas.pii import TOKEN_PREFIX, KeyringMissing, current_keyring, open_fields, person_ref, seal_fields

if TYPE_CHECKING:
    from schemas.pii import Keyring

P = TypeVar("P", bound=Payload)

log = logging.getLogger(__name__)

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


def encode(
    event: Envelope[Any], *, max_bytes: int = DEFAULT_MAX_RECORD_BYTES, keyring: Keyring | None = None
) -> Record:
    """Serialise an event; raises ``RecordTooLarge`` when it would exceed ``max_bytes``.

    With a keyring (``keyring``, else the process's, ``schemas.pii.use_keyring``) the personal
    fields are sealed under the person's data key (crypto-shredding, ``schemas.pii``)."""
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
    record = Record(key=event.subject.encode(), value=_payload_bytes(event, keyring), headers=headers)
    if record.size > max_bytes:
        raise RecordTooLarge(record.size, max_bytes, event_id=event.id, event_type=event.type)
    return record


def _payload_bytes(event: Envelope[Any], keyring: Keyring | None) -> bytes:
    # privacy hook (crypto-shredding, schemas/pii.py): personal fields sealed when a keyring is set
    ring = keyring or current_keyring()
    if ring is None:
        return event.data.model_dump_json().encode()  # type: ignore[no-any-return]
    data = event.data
    ref = person_ref(data)
    if ref is None:
        return data.model_dump_json().encode()  # type: ignore[no-any-return]
    return orjson.dumps(seal_fields(type(data), data.model_dump(mode="json"), lambda s: ring.seal(ref, s)))


def _open_payload(value: bytes, keyring: Keyring | None, dataschema: str) -> bytes:
    # privacy hook (crypto-shredding, schemas/pii.py): sealed personal fields opened before validation
    ring = keyring or current_keyring()
    if ring is not None and dataschema.startswith("urn:leadpipe:schema:person.erasure_requested:"):
        ring.forget()  # an erasure is on its way: no key is used from the cache any more
    if TOKEN_PREFIX.encode() not in value:
        return value
    try:
        raw = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise DecodeError(f"data: not JSON ({exc})", field="data", problem="not JSON") from exc
    if ring is None:
        raise KeyringMissing(
            "data: personal fields are encrypted and this reader has no key store (LEADPIPE_KEYSTORE_URL)",
            field="data",
            problem="encrypted, no keyring",
        )
    # back to JSON so validation runs in JSON mode exactly as for a plaintext record
    return orjson.dumps(open_fields(raw, ring.open))


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


@cache
def _open_enum_by_expectation() -> dict[str, type[StrEnum]]:
    """pydantic's ``ctx.expected`` text of an enum error -> the open enum it belongs to (the
    error names the allowed values, not the enum class)."""
    found: dict[str, type[StrEnum]] = {}
    for enum in OPEN_ENUMS:
        try:
            TypeAdapter(enum).validate_python("\x00not-a-member")
        except ValidationError as exc:
            found[str(exc.errors()[0]["ctx"]["expected"])] = enum
    return found


def _parent(data: Any, loc: Sequence[int | str]) -> Any:
    """The dict or list holding the item at ``loc`` (skipping the union-member tags pydantic puts
    into locations), or ``None`` when ``loc`` does not lead anywhere in ``data``."""
    node = data
    for step in loc[:-1]:
        held = isinstance(node, dict) and step in node
        if held or (isinstance(node, list) and isinstance(step, int) and 0 <= step < len(node)):
            node = node[step]
        elif isinstance(node, dict) and isinstance(step, str):
            continue  # a union member's tag, not a key
        else:
            return None
    return node


_logged_unknown: set[tuple[str, str]] = set()


def _note_unknown(model: type[Payload], loc: Sequence[int | str], what: str) -> None:
    path = ".".join(str(p) for p in loc)
    if (model.dataschema(), path) not in _logged_unknown and len(_logged_unknown) < 1000:
        _logged_unknown.add((model.dataschema(), path))
        log.info("%s: %s %s (written by a newer release), read as the rule says", model.dataschema(), what, path)


def _tolerate(model: type[Payload], data: Any, errors: Sequence[Any]) -> bool:
    """Drop unknown fields and apply the open-enum rule to ``data`` in place, as ``errors`` (of
    validating ``data`` against ``model``) direct. True when something was changed."""
    open_enums = _open_enum_by_expectation()
    changed = False
    dropped: dict[int, tuple[list[Any], set[int]]] = {}
    for err in errors:
        loc = err["loc"]
        parent = _parent(data, loc) if loc else None
        if parent is None:
            continue
        key = loc[-1]
        if err["type"] == "extra_forbidden" and isinstance(parent, dict) and key in parent:
            del parent[key]
            _note_unknown(model, loc, "ignored unknown field")
            changed = True
        elif err["type"] == "enum" and (enum := open_enums.get(str(err.get("ctx", {}).get("expected")))):
            if isinstance(parent, list) and isinstance(key, int):
                dropped.setdefault(id(parent), (parent, set()))[1].add(key)
                _note_unknown(model, loc, f"dropped unknown {enum.__name__} value {err['input']!r} from")
                changed = True
            elif isinstance(parent, dict) and (fallback := OPEN_ENUMS[enum]) is not None:
                parent[key] = fallback.value
                _note_unknown(
                    model, loc, f"read unknown {enum.__name__} value {err['input']!r} as {fallback.value!r} in"
                )
                changed = True
    for items, indexes in dropped.values():
        for index in sorted(indexes, reverse=True):
            del items[index]
    return changed


def _validate_payload(model: type[P], raw: bytes | dict[str, Any], *, strict: bool) -> P:
    try:
        return model.model_validate_json(raw) if isinstance(raw, bytes) else model.model_validate(raw)
    except ValidationError as exc:
        first = exc
    if not strict:
        # Only records a newer release wrote get here (valid records take the path above).
        errors = first.errors(include_url=False)
        if any(e["type"] in ("extra_forbidden", "enum") for e in errors):
            data = orjson.loads(raw) if isinstance(raw, bytes) else raw
            if _tolerate(model, data, errors):
                try:
                    return model.model_validate(data)
                except ValidationError as exc:
                    first = exc
    message, field, problem = _first_error(first, "data")
    raise DecodeError(message, field=field, problem=problem) from first


def decode(
    value: bytes | None,
    headers: Iterable[tuple[str, bytes]] | Mapping[str, bytes] | None,
    expected: type[P] | None = None,
    *,
    strict: bool = False,
    keyring: Keyring | None = None,
) -> Envelope[Any]:
    """Decode a record into an envelope with a validated payload.

    ``expected`` restricts the payload model (a record of another type is a ``DecodeError``).
    Old versions with a registered upcaster are upcast to ``expected`` (or the newest model).
    Lenient by default (what a consumer wants: fields and open-enum values a newer release
    added do not fail the record); ``strict=True`` refuses them (a producer checking its output).
    Sealed personal fields are opened with ``keyring`` (else the process's); ``SubjectErased`` (a
    ``DecodeError``) when the person's key was destroyed: callers skip such a record.
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
    value = _open_payload(value, keyring, dataschema)
    resolved = resolve(dataschema, expected)
    if resolved is None:
        raise UnknownEventType(
            f"header ce_dataschema: no event model for {dataschema!r}", field="ce_dataschema", problem="unknown"
        )
    model, upcasts = resolved
    if expected is not None and model is not expected:
        raise DecodeError(
            f"header ce_dataschema: expected {expected.dataschema()}, got {dataschema}",
            field="ce_dataschema",
            problem="unexpected event type",
        )
    raw_payload: bytes | dict[str, Any] = value
    if upcasts:
        try:
            upcast_payload: dict[str, Any] = orjson.loads(value)
        except orjson.JSONDecodeError as exc:
            raise DecodeError(f"data: not JSON ({exc})", field="data", problem="not JSON") from exc
        for upcast in upcasts:
            upcast_payload = upcast(upcast_payload)
        raw_payload = upcast_payload
    payload = _validate_payload(model, raw_payload, strict=strict)
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


def decode_record(
    record: Record, expected: type[P] | None = None, *, strict: bool = False, keyring: Keyring | None = None
) -> Envelope[Any]:
    return decode(record.value, record.headers, expected, strict=strict, keyring=keyring)
