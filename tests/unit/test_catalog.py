"""The catalog: current aliases, upcasting in one place, subscriptions and consumer groups."""

from __future__ import annotations

import importlib
from typing import Any, ClassVar

import pytest

from schemas import DecodeError, decode, encode
from schemas.base import Payload, Stage
from schemas.catalog import CURRENT, PAYLOADS, UPCASTERS, resolve
from schemas.lead_stage_changed import Current as StageChangedCurrent
from schemas.lead_stage_changed.v1 import LeadStageChanged
from schemas.topics import CONSUMER_GROUPS, TOPICS, UnknownService, consumer_group, subscribed_models, subscriptions
from tests.samples import events

V0 = "urn:leadpipe:schema:lead.stage_changed:v0"


class StageChangedV2(Payload):
    """A pretend next major version: ``reason`` became ``why``."""

    EVENT_TYPE: ClassVar[str] = "lead.stage_changed"
    VERSION: ClassVar[int] = 2

    lead_id: str
    to_stage: Stage
    why: str


def _v0_to_v1(doc: dict[str, Any]) -> dict[str, Any]:
    return {
        "lead_id": doc["lead"],
        "from_stage": None,
        "to_stage": doc["stage"],
        "reason": "v0",
        "changed_at": doc["at"],
    }


def _v1_to_v2(doc: dict[str, Any]) -> dict[str, Any]:
    return {"lead_id": doc["lead_id"], "to_stage": doc["to_stage"], "why": doc["reason"]}


def test_every_event_package_names_its_newest_version_current():
    for payload in PAYLOADS:
        package = importlib.import_module(payload.__module__.rsplit(".", 1)[0])
        assert package.Current is CURRENT[payload.EVENT_TYPE] is payload
        assert getattr(package, payload.__name__) is payload
    assert StageChangedCurrent is LeadStageChanged


def test_a_record_of_a_known_version_needs_no_upcasting():
    assert resolve(LeadStageChanged.dataschema()) == (LeadStageChanged, ())
    assert resolve("urn:leadpipe:schema:lead.stage_changed:v9") is None


def test_a_consumer_asking_for_v2_gets_v1_records_upcast_while_v1_readers_keep_v1(monkeypatch):
    monkeypatch.setitem(UPCASTERS, LeadStageChanged.dataschema(), (StageChangedV2, _v1_to_v2))
    record = encode(events()[3])
    upcast = decode(record.value, record.headers, StageChangedV2)
    assert isinstance(upcast.data, StageChangedV2)
    assert upcast.data.why == events()[3].data.reason
    assert upcast.dataschema == StageChangedV2.dataschema()
    assert isinstance(decode(record.value, record.headers).data, LeadStageChanged)


def test_upcasters_chain_from_the_oldest_version_to_the_one_asked_for(monkeypatch):
    monkeypatch.setitem(UPCASTERS, V0, (LeadStageChanged, _v0_to_v1))
    monkeypatch.setitem(UPCASTERS, LeadStageChanged.dataschema(), (StageChangedV2, _v1_to_v2))
    record = encode(events()[3])
    headers = [(k, V0.encode() if k == "ce_dataschema" else v) for k, v in record.headers]
    value = b'{"lead": "ld-1", "stage": "engaged", "at": "2026-05-04T09:30:02Z"}'
    assert isinstance(decode(value, headers, StageChangedV2).data, StageChangedV2)
    assert decode(value, headers, StageChangedV2).data.why == "v0"
    assert isinstance(decode(value, headers, LeadStageChanged).data, LeadStageChanged)


def test_an_upcast_payload_that_is_still_invalid_names_the_field(monkeypatch):
    monkeypatch.setitem(UPCASTERS, V0, (LeadStageChanged, lambda doc: {**_v0_to_v1(doc), "to_stage": "limbo"}))
    record = encode(events()[3])
    headers = [(k, V0.encode() if k == "ce_dataschema" else v) for k, v in record.headers]
    with pytest.raises(DecodeError) as err:
        decode(b'{"lead": "ld-1", "stage": "engaged", "at": "2026-05-04T09:30:02Z"}', headers)
    assert err.value.field == "data.to_stage"


def test_an_upcaster_cycle_is_an_error_not_a_hang(monkeypatch):
    monkeypatch.setitem(UPCASTERS, V0, (StageChangedV2, _v1_to_v2))
    monkeypatch.setitem(UPCASTERS, StageChangedV2.dataschema(), (LeadStageChanged, _v0_to_v1))
    monkeypatch.setitem(UPCASTERS, LeadStageChanged.dataschema(), (StageChangedV2, _v1_to_v2))
    with pytest.raises(ValueError, match="cycle"):
        resolve(V0, Payload)


def test_subscriptions_come_from_the_catalog_and_name_registered_topics():
    assert subscriptions("scoring") == ("lead.captured.v1", "lead.engagement.v1", "person.erasure_requested.v1")
    assert "lead.scored.v1" in subscriptions("nurture")
    assert "notification.requested.v1" in subscriptions("notifier")
    for service in ("scoring", "nurture", "notifier", "console"):
        assert set(subscriptions(service)) <= set(TOPICS)
        assert all(model.topic() == topic for topic, model in subscribed_models(service).items())


def test_the_consoles_projected_topics_are_its_catalog_subscriptions():
    from services.console.handlers import TOPICS as CONSOLE_TOPICS

    assert set(CONSOLE_TOPICS) == set(subscriptions("console"))


def test_every_consuming_service_has_one_consumer_group():
    assert consumer_group("nurture") == "leadpipe-nurture"
    assert consumer_group("console") == "console"
    assert len(set(CONSUMER_GROUPS.values())) == len(CONSUMER_GROUPS)


def test_an_unknown_service_is_named_in_the_error():
    with pytest.raises(UnknownService, match="'nurtur'"):
        consumer_group("nurtur")
    with pytest.raises(UnknownService, match="'ingest'"):
        subscriptions("ingest")
