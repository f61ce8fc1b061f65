"""Rolling deploys: a producer may be upgraded before its consumers.

A released version only gains optional fields (and open enums only gain values), so a record
"from the next release" is a valid record of today's version plus a field today's code does not
know. Every consumer of every event type must decode such a record (not dead-letter it) with
every field it knows intact; producers stay strict. The records are the golden records (one per
released event version), changed the way the next release could change them.
"""

from __future__ import annotations

import json
import types
import typing
from pathlib import Path
from typing import Any

import pytest

from schemas import DecodeError, decode
from schemas.base import Channel, Part, Payload, SourceKind
from schemas.catalog import CURRENT, PAYLOADS, payload_for
from schemas.topics import _CONSUMERS, _PROJECTIONS, subscribed_models
from tests.contract.known import as_known

GOLDEN = Path(__file__).parent / "golden"
NEW_FIELD = "added_in_next_release"


def _golden(stem: str) -> tuple[list[tuple[str, bytes]], dict[str, Any]]:
    doc = json.loads((GOLDEN / f"{stem}.json").read_text())
    return [(k, v.encode()) for k, v in doc["headers"].items()], doc["value"]


def _part_type(annotation: Any) -> type[Part] | None:
    """The Part model a field holds (unwrapping ``X | None``), if it holds one."""
    candidates = typing.get_args(annotation) if isinstance(annotation, types.UnionType) else (annotation,)
    for candidate in candidates:
        if isinstance(candidate, type) and issubclass(candidate, Part):
            return candidate
    return None


def _next_release(model: type[Payload] | type[Part], value: dict[str, Any]) -> dict[str, Any]:
    """``value`` plus a new field at the top and in every nested part object (or list of them)."""
    out: dict[str, Any] = {**value, NEW_FIELD: {"anything": [1, "two"]}}
    for name, info in model.model_fields.items():
        held = value.get(name)
        part = _part_type(info.annotation)
        if part is not None and isinstance(held, dict):
            out[name] = _next_release(part, held)
        elif typing.get_origin(info.annotation) is tuple and isinstance(held, list):
            item = _part_type(typing.get_args(info.annotation)[0])
            if item is not None:
                out[name] = [_next_release(item, v) if isinstance(v, dict) else v for v in held]
    return out


def _consumers_of(payload: type[Payload]) -> list[tuple[str, type[Payload]]]:
    """(service, the model it expects on this topic); a topic nobody consumes is checked with its
    own model (the operator tools read every topic)."""
    services = [*_CONSUMERS[payload.EVENT_TYPE], *(s for s, ts in _PROJECTIONS.items() if payload.EVENT_TYPE in ts)]
    found = [(s, subscribed_models(s)[payload.topic()]) for s in services]
    return found or [("ops", payload)]


CASES = [(p, service, model) for p in PAYLOADS for service, model in _consumers_of(p)]


def test_the_next_release_adds_fields_at_every_level():
    # Guards the helper: nested parts really get the new field (so nested leniency is tested).
    headers, value = _golden("lead.captured.v1")
    nxt = _next_release(payload_for(dict(headers)["ce_dataschema"].decode()) or Payload, value)
    assert NEW_FIELD in nxt and NEW_FIELD in nxt["identity"] and NEW_FIELD in nxt["consent"]
    headers, value = _golden("lead.scored.v1")
    assert all(NEW_FIELD in reason for reason in _next_release(CURRENT["lead.scored"], value)["reasons"])


@pytest.mark.parametrize(("payload", "service", "model"), CASES, ids=lambda x: getattr(x, "__name__", str(x)))
def test_every_consumer_decodes_a_next_release_record_with_known_fields_intact(payload, service, model):
    headers, value = _golden(payload.topic())
    nxt = _next_release(payload, value)
    event = decode(json.dumps(nxt).encode(), headers, model)
    assert isinstance(event.data, CURRENT[payload.EVENT_TYPE]), service
    dumped = json.loads(event.data.model_dump_json())
    assert NEW_FIELD not in dumped
    for field, known in value.items():
        assert as_known(dumped[field], known) == known, f"{service}: {payload.topic()} field {field} changed"


@pytest.mark.parametrize("payload", PAYLOADS, ids=lambda p: p.topic())
def test_producers_stay_strict_about_the_next_releases_fields(payload):
    headers, value = _golden(payload.topic())
    with pytest.raises(DecodeError) as err:
        decode(json.dumps(_next_release(payload, value)).encode(), headers, payload, strict=True)
    assert err.value.field is not None and err.value.field.endswith(NEW_FIELD)


# --- Adding a value to a published enum (docs/contracts.md) --------------------------------------


def _decode_changed(stem: str, change: dict[str, Any], model: type[Payload], *, strict: bool = False) -> Any:
    headers, value = _golden(stem)
    return decode(json.dumps({**value, **change}).encode(), headers, model, strict=strict), value


def test_an_older_consumer_reads_a_new_source_kind_as_the_declared_fallback():
    # The next release adds SourceKind "partner_portal": today's scoring scores it as "api".
    [(_, scoring_model)] = [(s, m) for s, m in _consumers_of(CURRENT["lead.captured"]) if s == "scoring"]
    event, value = _decode_changed("lead.captured.v1", {"source_kind": "partner_portal"}, scoring_model)
    assert event.data.source_kind is SourceKind.API
    assert event.data.capture_id == value["capture_id"]


def test_an_older_consumer_drops_a_new_channel_from_a_list_of_channels():
    event, _ = _decode_changed(
        "lead.captured.v1",
        {"consent": {"marketing": True, "channels": ["whatsapp", "email", "carrier_pigeon"]}},
        CURRENT["lead.captured"],
    )
    assert event.data.consent.channels == (Channel.EMAIL,)
    scored, _ = _decode_changed("lead.scored.v1", {"suppressed_channels": ["sms", "whatsapp"]}, CURRENT["lead.scored"])
    assert scored.data.suppressed_channels == (Channel.SMS,)


def test_an_older_notifier_refuses_a_request_on_a_channel_it_does_not_know():
    # Channel declares no fallback: guessing a channel would deliver the wrong way. The record is
    # refused (dead-lettered, replayable after the notifier is upgraded), naming the field.
    with pytest.raises(DecodeError) as err:
        _decode_changed("notification.requested.v1", {"channel": "whatsapp"}, CURRENT["notification.requested"])
    assert err.value.field == "data.channel"


def test_a_closed_enum_gets_no_leniency():
    with pytest.raises(DecodeError) as err:
        _decode_changed("lead.scored.v1", {"grade": "A+"}, CURRENT["lead.scored"])
    assert err.value.field == "data.grade"


def test_producers_stay_strict_about_new_enum_values():
    with pytest.raises(DecodeError) as err:
        _decode_changed("lead.captured.v1", {"source_kind": "partner_portal"}, CURRENT["lead.captured"], strict=True)
    assert err.value.field == "data.source_kind"
