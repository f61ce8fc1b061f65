"""Crypto-shredding in the codec: personal fields sealed under the person's key, unreadable once
the key is destroyed, plaintext records of before still readable."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from leadpipe.devstack.processes import free_port
from leadpipe.runtime.keystore import (
    KeyStoreUnavailable,
    MissingKeyStore,
    RedisKeyStore,
    install_from_env,
    open_state,
    seal_state,
)
from leadpipe.runtime.metrics import StageMetrics
from leadpipe.runtime.stream import EventProcessor, RawMessage
from schemas import decode_record, encode, new_event
from schemas.codec import Record
from schemas.errors import DecodeError
from schemas.person_erasure_requested.v1 import erasure_request
from schemas.pii import (
    Keyring,
    KeyringMissing,
    SubjectErased,
    current_keyring,
    email_ref,
    lead_ref,
    new_key,
    person_ref,
    personal_paths,
    refs_for,
    use_keyring,
)
from tests.fakes import FakePublisher
from tests.samples import events

SECRET = "test-secret"


class MemoryKeyStore:
    """``schemas.pii.KeyStore`` in a dict."""

    def __init__(self) -> None:
        self.keys: dict[str, tuple[str, bytes]] = {}
        self.gets = 0

    def get(self, kid: str) -> tuple[str, bytes] | None:
        self.gets += 1
        return self.keys.get(kid)

    def get_or_create(self, kid: str) -> tuple[str, bytes]:
        return self.keys.setdefault(kid, new_key())

    def destroy(self, kids: Iterable[str]) -> int:
        return sum(1 for k in kids if self.keys.pop(k, None) is not None)


def ring(store: MemoryKeyStore | None = None, **kw: Any) -> Keyring:
    return Keyring(store or MemoryKeyStore(), SECRET, **kw)


def by_type(name: str) -> Any:
    return next(e for e in events() if e.type == f"dev.leadpipe.{name}")


PERSONAL_STRINGS = {
    "lead.captured": lambda d: [d.identity.email, d.identity.phone, d.person.first_name, d.person.last_name],
    "lead.scored": lambda d: [d.profile.email, d.profile.full_name],
}


@pytest.mark.parametrize("event", events(), ids=lambda e: e.type)
def test_every_event_round_trips_through_a_sealed_record(event):
    keys = ring()
    assert decode_record(encode(event, keyring=keys), keyring=keys) == event


@pytest.mark.parametrize("name", ["lead.captured", "lead.scored"])
def test_no_personal_string_is_in_the_sealed_bytes(name):
    event = by_type(name)
    sealed = encode(event, keyring=ring())
    plain = encode(event)
    # Outside the ciphertext tokens: a short name ("Lee") turns up by chance inside random
    # base64 in about one run in 400 (measured), which made this test fail now and then.
    readable = re.sub(rb'"pii1:[^"]*"', b'"<sealed>"', sealed.value)
    for text in PERSONAL_STRINGS[name](event.data):
        if text:
            assert text.encode() in plain.value
            assert text.encode() not in readable
    assert b"pii1:" in sealed.value


def test_fields_that_are_not_personal_stay_readable_for_aggregates():
    event = by_type("lead.captured")
    sealed = encode(event, keyring=ring())
    assert f'"source_kind":"{event.data.source_kind.value}"'.encode() in sealed.value


def test_a_destroyed_key_makes_every_record_of_the_person_unreadable_and_says_so():
    store = MemoryKeyStore()
    keys = ring(store)
    event = by_type("lead.captured")
    record = encode(event, keyring=keys)
    ref = person_ref(event.data)
    assert ref == "email:" + event.data.identity.email.strip().lower()
    assert keys.destroy([ref]) == 1
    with pytest.raises(SubjectErased) as err:
        decode_record(record, keyring=keys)
    assert err.value.problem == "person erased"
    assert isinstance(err.value, DecodeError)


def test_a_new_key_after_erasure_does_not_open_the_old_records():
    store = MemoryKeyStore()
    keys = ring(store)
    event = by_type("lead.captured")
    old = encode(event, keyring=keys)
    keys.destroy([person_ref(event.data)])
    new = encode(event, keyring=keys)  # the same address captured again: a fresh key
    assert decode_record(new, keyring=keys) == event
    with pytest.raises(SubjectErased):
        decode_record(old, keyring=keys)


def test_another_process_cache_stops_using_a_destroyed_key_after_an_erasure_request_or_the_ttl():
    store = MemoryKeyStore()
    now = [0.0]
    writer, reader = ring(store), ring(store, cache_ttl_s=10, clock=lambda: now[0])
    event = by_type("lead.captured")
    record = encode(event, keyring=writer)
    assert decode_record(record, keyring=reader) == event  # cached now
    writer.destroy([person_ref(event.data)])
    assert decode_record(record, keyring=reader) == event  # within the cache's lifetime
    now[0] = 11.0
    with pytest.raises(SubjectErased):
        decode_record(record, keyring=reader)


def test_the_key_cache_drops_expired_keys_and_holds_at_most_its_bound():
    store = MemoryKeyStore()
    now = [0.0]
    keys = ring(store, cache_ttl_s=10, cache_max=3, clock=lambda: now[0])
    for i in range(3):
        keys.seal(f"person-{i}", "x")
    assert len(keys._cache) == 3
    keys.seal("person-3", "x")  # over the bound: the oldest goes
    assert [keys.kid(f"person-{i}") for i in (1, 2, 3)] == list(keys._cache)
    now[0] = 5.0
    keys.seal("person-4", "x")
    now[0] = 12.0  # 1, 2 and 3 expired at 10: a key is cached for its TTL from when it was fetched
    token = keys.seal("person-5", "x")
    assert list(keys._cache) == [keys.kid("person-4"), keys.kid("person-5")]
    gets = store.gets
    assert keys.open(token) == "x" and store.gets == gets  # still served from the cache
    now[0] = 100.0
    keys.seal("person-6", "x")
    assert list(keys._cache) == [keys.kid("person-6")]


def test_a_prefetch_fills_the_cache_within_the_same_bounds():
    store = MemoryKeyStore()
    now = [0.0]
    writer = ring(store)
    tokens = [writer.seal(f"person-{i}", "x").encode() for i in range(5)]

    class Async:
        async def fetch(self, kids: Any, create: Any = ()) -> dict[str, tuple[str, bytes]]:
            return {k: store.keys[k] for k in kids if k in store.keys}

    reader = ring(store, cache_ttl_s=10, cache_max=4, clock=lambda: now[0], prefetch_store=Async())
    assert asyncio.run(reader.prefetch(tokens)) == 5
    assert len(reader._cache) == 4
    now[0] = 11.0
    assert asyncio.run(reader.prefetch(tokens[:1])) == 1
    assert list(reader._cache) == [writer.kid("person-0")]


def test_decoding_an_erasure_request_clears_the_key_cache():
    store = MemoryKeyStore()
    keys = ring(store, cache_ttl_s=3600)
    event = by_type("lead.captured")
    record = encode(event, keyring=keys)
    assert decode_record(record, keyring=keys) == event
    store.destroy(list(store.keys))  # destroyed by the requester, another process
    request = erasure_request(SECRET, request_id="r1", requested_at=datetime.now(UTC), requested_by="t", email="x@y.z")
    decode_record(encode(new_event(request, source="/test", subject=request.subject_hash), keyring=keys), keyring=keys)
    with pytest.raises(SubjectErased):
        decode_record(record, keyring=keys)


def test_a_plaintext_record_from_before_encryption_still_decodes_with_a_keyring():
    event = by_type("lead.captured")
    assert decode_record(encode(event), keyring=ring()) == event


def test_a_sealed_record_read_without_a_keyring_is_a_clear_error():
    record = encode(by_type("lead.captured"), keyring=ring())
    with pytest.raises(KeyringMissing, match="LEADPIPE_KEYSTORE_URL"):
        decode_record(record)


def test_a_tampered_field_is_a_decode_error_not_an_erasure():
    keys = ring()
    record = encode(by_type("lead.captured"), keyring=keys)
    at = record.value.index(b"pii1:") + 60
    flipped = record.value[:at] + (b"A" if record.value[at : at + 1] != b"A" else b"B") + record.value[at + 1 :]
    with pytest.raises(DecodeError) as err:
        decode_record(Record(record.key, flipped, record.headers), keyring=keys)
    assert not isinstance(err.value, SubjectErased)


def test_the_installed_keyring_is_used_when_a_call_passes_none():
    keys = ring()
    previous = use_keyring(keys)
    try:
        assert current_keyring() is keys
        record = encode(by_type("lead.captured"))
        assert b"pii1:" in record.value
        assert decode_record(record) == by_type("lead.captured")
    finally:
        use_keyring(previous)


def test_every_event_type_naming_a_person_has_a_ref_and_its_personal_fields_are_listed():
    for event in events():
        if personal_paths(type(event.data)):
            assert person_ref(event.data), event.type
    assert "identity.email" in personal_paths(type(by_type("lead.captured").data))
    assert "recipient.address" in personal_paths(type(by_type("notification.requested").data))


def test_the_ref_of_each_sample_event_names_who_it_is_about():
    """``person_ref`` probes names a payload may lack without pydantic's AttributeError; what
    it returns per event kind is unchanged: the person where one is named, else the lead."""
    refs = {event.type.removeprefix("dev.leadpipe."): person_ref(event.data) for event in events()}
    person = email_ref(by_type("lead.captured").data.identity.email)
    lead = lead_ref(by_type("lead.stage_changed").data.lead_id)
    assert refs == {
        "lead.captured": person, "lead.engagement": person, "lead.scored": person,
        "lead.stage_changed": lead, "lead.assigned": lead, "assignment.response": lead,
        "notification.requested": lead, "notification.outcome": lead,  # the samples' are a rep's
    }  # fmt: skip
    requested = by_type("notification.requested").data
    recipient = requested.recipient.model_copy(update={"address": "Lee@Example.com"})
    to_lead = requested.model_copy(update={"audience": "lead", "recipient": recipient})
    assert person_ref(to_lead) == email_ref("lee@example.com")  # a message to the lead: the lead's person


def test_whole_state_values_are_sealed_and_plain_ones_pass_through():
    keys = ring()
    sealed = keys.seal_bytes("lead:ld_1", b'{"lead_id":"ld_1","email":"a@b.c"}')
    assert b"a@b.c" not in sealed
    assert keys.open_bytes(sealed) == b'{"lead_id":"ld_1","email":"a@b.c"}'
    assert keys.open_bytes(b'{"plain":1}') == b'{"plain":1}'
    keys.destroy(["lead:ld_1"])
    with pytest.raises(SubjectErased):
        keys.open_bytes(sealed)


def test_refs_for_an_erasure_cover_email_phone_leads_and_scoring_identifiers():
    refs = refs_for(email=" Dana@Example.com ", phone="+1 415 555 0100", lead_ids=["ld_1"], identifiers=["badge:s/B1"])
    assert refs == {"email:dana@example.com", "phone:+14155550100", "lead:ld_1", "badge:s/B1"}


async def test_the_runtime_skips_a_record_of_an_erased_person_counts_it_and_dead_letters_nothing():
    store = MemoryKeyStore()
    keys = ring(store)
    event = by_type("lead.captured")
    record = encode(event, keyring=keys)
    keys.destroy([person_ref(event.data)])
    metrics, publisher, handled = StageMetrics("scoring", CollectorRegistry()), FakePublisher(), []

    async def handler(e: Any) -> list[Any]:
        handled.append(e)
        return []

    previous = use_keyring(keys)
    try:
        processor = EventProcessor(service="scoring", metrics=metrics, publisher=publisher)
        msg = RawMessage("lead.captured.v1", 0, 7, record.key, record.value, record.headers)
        assert await processor.process(msg, type(event.data), handler) is True
    finally:
        use_keyring(previous)
    assert handled == [] and publisher.records == [] and publisher.events == []
    assert (
        metrics.registry.get_sample_value(
            "leadpipe_events_erased_skipped_total", {"service": "scoring", "topic": "lead.captured.v1"}
        )
        == 1
    )


def test_state_values_open_as_tombstones_once_erased_and_need_a_keyring_when_sealed():
    keys = ring()
    sealed = keys.seal_bytes("lead:ld_9", b'{"lead_id":"ld_9"}')
    previous = use_keyring(keys)
    try:
        assert open_state(sealed) == b'{"lead_id":"ld_9"}'
        assert open_state(seal_state("ld_9", b"{}")) == b"{}"
        keys.destroy(["lead:ld_9"])
        assert open_state(sealed) is None
        assert open_state(b'{"plain":true}') == b'{"plain":true}'
    finally:
        use_keyring(None)
    with pytest.raises(KeyringMissing, match="LEADPIPE_KEYSTORE_URL"):
        open_state(sealed)
    assert seal_state("ld_9", b"{}") == b"{}"  # no keyring: written as before
    use_keyring(previous)


def test_an_unreachable_key_store_is_a_transient_connection_error():
    store = RedisKeyStore.from_url(f"redis://127.0.0.1:{free_port()}/1")
    with pytest.raises(KeyStoreUnavailable) as err:
        Keyring(store, SECRET).seal("email:a@b.c", "x")
    assert isinstance(err.value, ConnectionError)


def test_without_a_key_store_url_nothing_is_installed_and_a_warning_says_so(monkeypatch, caplog):
    monkeypatch.delenv("LEADPIPE_KEYSTORE_URL", raising=False)
    previous = use_keyring(None)
    try:
        assert install_from_env("test") is None
        assert current_keyring() is None
        assert "unencrypted" in caplog.text
    finally:
        use_keyring(previous)


def test_production_refuses_to_start_without_a_key_store(monkeypatch):
    monkeypatch.delenv("LEADPIPE_KEYSTORE_URL", raising=False)
    monkeypatch.setenv("LEADPIPE_ENV", "production")
    previous = use_keyring(None)
    try:
        with pytest.raises(MissingKeyStore, match="LEADPIPE_KEYSTORE_URL"):
            install_from_env("nurture")
        assert current_keyring() is None
    finally:
        use_keyring(previous)


class UnreachableOnceKeyStore(MemoryKeyStore):
    """The key store of a Redis that is restarting: the first read fails, the next ones answer."""

    def get(self, kid: str) -> tuple[str, bytes] | None:
        if self.gets == 0:
            self.gets += 1
            raise KeyStoreUnavailable("key store unreachable: Connection refused")
        return super().get(kid)


async def test_a_record_read_while_the_key_store_is_away_is_decoded_once_it_is_back_not_lost():
    writer = ring()
    event = by_type("lead.captured")
    record = encode(event, keyring=writer)
    store = UnreachableOnceKeyStore()
    store.keys = dict(writer.store.keys)  # type: ignore[attr-defined]
    metrics, publisher, handled = StageMetrics("scoring", CollectorRegistry()), FakePublisher(), []

    async def handler(e: Any) -> None:
        handled.append(e)

    previous = use_keyring(ring(store))
    try:
        processor = EventProcessor(service="scoring", metrics=metrics, publisher=publisher, retry_base_s=0.01)
        msg = RawMessage("lead.captured.v1", 0, 8, record.key, record.value, record.headers)
        assert await processor.process(msg, type(event.data), handler) is True
    finally:
        use_keyring(previous)
    assert [e.id for e in handled] == [event.id] and publisher.records == []
    assert handled[0].data.identity.email == event.data.identity.email
    assert (
        metrics.registry.get_sample_value(
            "leadpipe_event_retries_total", {"service": "scoring", "topic": "lead.captured.v1"}
        )
        == 1
    )
