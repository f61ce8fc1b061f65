"""Data keys fetched ahead of the codec: one async round trip per batch instead of a blocking one
per new person, and never a key kept or created that the synchronous path would not have."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from leadpipe.runtime.metrics import StageMetrics
from leadpipe.runtime.publish import KafkaPublisher
from leadpipe.runtime.stream import BatchProcessor, EventProcessor, RawMessage
from schemas import decode_record, encode, new_event
from schemas.codec import Record
from schemas.envelope import Envelope
from schemas.lead_captured.v1 import LeadCaptured
from schemas.pii import Keyring, SubjectErased, lead_ref, new_key, person_ref, sealing_ref, use_keyring
from services.nurture.handlers import NurtureBatch
from tests.fakes import FakePublisher
from tests.unit.test_crypto_shredding import SECRET, MemoryKeyStore, by_type

TOPIC = "lead.captured.v1"


class CountingAsyncStore:
    """``schemas.pii.AsyncKeyStore`` over a ``MemoryKeyStore``, counting its round trips."""

    def __init__(self, store: MemoryKeyStore) -> None:
        self.store = store
        self.calls: list[tuple[list[str], list[str]]] = []
        self.during: Any = None  # run while the round trip is "on the wire"
        self.fail: Exception | None = None

    async def fetch(self, kids: Sequence[str], create: Sequence[str] = ()) -> dict[str, tuple[str, bytes]]:
        self.calls.append((list(kids), list(create)))
        if self.fail is not None:
            raise self.fail
        await asyncio.sleep(0)
        if self.during is not None:
            self.during()
        out = {k: v for k in kids if (v := self.store.keys.get(k)) is not None}
        out.update({k: self.store.keys.setdefault(k, new_key()) for k in create})
        return out


class CountingKeyStore(MemoryKeyStore):
    """The synchronous store, counting get-or-create too (each a blocking round trip)."""

    def __init__(self) -> None:
        super().__init__()
        self.creates = 0

    def get_or_create(self, kid: str) -> tuple[str, bytes]:
        self.creates += 1
        return super().get_or_create(kid)


def rings() -> tuple[CountingKeyStore, CountingAsyncStore, Keyring]:
    store = CountingKeyStore()
    fast = CountingAsyncStore(store)
    return store, fast, Keyring(store, SECRET, cache_ttl_s=3600, prefetch_store=fast)


def capture(n: int) -> Envelope[Any]:
    event = by_type("lead.captured")
    identity = event.data.identity.model_copy(update={"email": f"person{n}@example.com"})
    data = event.data.model_copy(update={"identity": identity})
    return new_event(data, source="/test", subject=f"s{n}")


def sealed(events: list[Envelope[Any]], keys: Keyring) -> list[RawMessage]:
    records = [encode(e, keyring=keys) for e in events]
    return [RawMessage(TOPIC, 0, i, r.key, r.value, r.headers) for i, r in enumerate(records)]


def reader(store: MemoryKeyStore) -> tuple[CountingAsyncStore, Keyring]:
    fast = CountingAsyncStore(store)
    return fast, Keyring(store, SECRET, cache_ttl_s=3600, prefetch_store=fast)


async def test_a_batch_of_new_people_asks_the_store_once_and_decodes_without_a_blocking_read():
    store, _, writer = rings()
    msgs = sealed([capture(n) for n in range(5)], writer)
    fast, keys = reader(store)
    assert await keys.prefetch(m.value for m in msgs) == 5
    assert len(fast.calls) == 1 and len(fast.calls[0][0]) == 5 and fast.calls[0][1] == []
    for m in msgs:
        decode_record(encode_back(m), keyring=keys)
    assert store.gets == 0  # no synchronous round trip: every key came from the prefetch


def encode_back(m: RawMessage) -> Record:
    return Record(m.key or b"", m.value or b"", m.headers)


async def test_cached_keys_are_not_asked_for_again_and_nothing_to_ask_is_no_round_trip():
    store, _, writer = rings()
    msgs = sealed([capture(1), capture(2)], writer)
    fast, keys = reader(store)
    await keys.prefetch(m.value for m in msgs)
    assert await keys.prefetch(m.value for m in msgs) == 0
    assert await keys.prefetch([b'{"plain": "record"}', None]) == 0
    assert len(fast.calls) == 1


async def test_a_key_cached_under_another_version_is_asked_for_again():
    store, _, writer = rings()
    old = sealed([capture(1)], writer)[0]
    fast, keys = reader(store)
    await keys.prefetch([old.value])
    writer.destroy([person_ref(capture(1).data)])
    new = sealed([capture(1)], writer)[0]  # the same address captured again: a new key
    assert await keys.prefetch([new.value]) == 1
    assert len(fast.calls) == 2


async def test_a_key_missing_from_the_store_is_not_cached_and_decoding_says_the_person_was_erased():
    store, _, writer = rings()
    msg = sealed([capture(1)], writer)[0]
    writer.destroy([person_ref(capture(1).data)])
    _, keys = reader(store)
    assert await keys.prefetch([msg.value]) == 1
    with pytest.raises(SubjectErased):
        decode_record(encode_back(msg), keyring=keys)
    assert await keys.prefetch([msg.value]) == 1  # still not cached: asked again next time
    assert store.gets == 1  # and the codec asked the store itself, as before


async def test_keys_fetched_across_an_erasure_are_dropped_not_cached():
    store, _, writer = rings()
    msg = sealed([capture(1)], writer)[0]
    fast, keys = reader(store)
    kid = keys.kid(person_ref(capture(1).data))

    def erasure_meanwhile() -> None:  # another agent of this process destroys the key
        keys.destroy([person_ref(capture(1).data)])

    fast.during = erasure_meanwhile
    await keys.prefetch([msg.value])
    assert keys._cached(kid) is None
    fast.during = lambda: keys.forget()  # or just decodes an erasure request
    await keys.prepare([lead_ref("ld_1")])
    assert keys._cached(keys.kid(lead_ref("ld_1"))) is None


async def test_prepare_creates_only_the_keys_it_is_told_to_and_reads_the_existing_ones():
    store, fast, keys = rings()
    known = keys.kid(lead_ref("ld_known"))
    store.keys[known] = new_key()
    n = await keys.prepare([lead_ref("ld_new")], existing=[lead_ref("ld_known"), lead_ref("ld_gone")])
    assert n == 3 and len(fast.calls) == 1
    assert keys.kid(lead_ref("ld_new")) in store.keys  # created, as sealing would
    assert keys.kid(lead_ref("ld_gone")) not in store.keys  # only read: never created ahead
    assert keys._cached(known) is not None and keys._cached(keys.kid(lead_ref("ld_gone"))) is None
    keys.seal(lead_ref("ld_new"), "state")
    keys.seal(lead_ref("ld_known"), "state")
    assert store.creates == 0  # both sealed from the cache
    assert await keys.prepare([lead_ref("ld_new")], existing=[lead_ref("ld_known")]) == 0
    assert len(fast.calls) == 1


def test_the_sealing_ref_is_the_person_ref_only_when_there_is_something_personal_to_seal():
    event = by_type("lead.captured")
    assert sealing_ref(event.data) == person_ref(event.data) is not None
    changed = by_type("lead.stage_changed").data
    assert person_ref(changed) is not None and sealing_ref(changed) is None  # no personal field: no key
    outcome = by_type("notification.outcome").data.model_copy(update={"provider_response": None, "error": None})
    assert sealing_ref(outcome) is None  # personal fields, all empty: nothing sealed, no key


async def test_the_batch_runtime_prefetches_once_per_batch_and_prepares_its_seal_refs():
    store, _, writer = rings()
    msgs = sealed([capture(n) for n in range(4)], writer)
    fast, keys = reader(store)
    handled: list[Any] = []
    asked: list[list[str]] = []

    class Handler:
        def key(self, event: Envelope[Any]) -> str | None:
            return None

        async def begin(self, events: Sequence[Envelope[Any]]) -> None: ...

        async def handle(self, event: Envelope[Any]) -> None:
            handled.append(event)
            keys.seal(lead_ref(event.subject), "state")  # the handler's own seal: cached already

        async def commit(self) -> None: ...

        async def abandon(self) -> None: ...

    def seal_refs(events: Sequence[Envelope[Any]]) -> tuple[list[str], list[str]]:
        asked.append([e.subject for e in events])
        return [lead_ref(e.subject) for e in events], []

    events = EventProcessor(service="scoring", metrics=StageMetrics("scoring", CollectorRegistry()),
                            publisher=FakePublisher())  # fmt: skip
    batch = BatchProcessor(events, Handler(), {TOPIC: LeadCaptured}, seal_refs=seal_refs)
    previous = use_keyring(keys)
    try:
        assert await batch.process(msgs) == 4
    finally:
        use_keyring(previous)
    assert len(fast.calls) == 2  # one read for the records, one get-or-create for the seals
    assert len(fast.calls[0][0]) == 4 and len(fast.calls[1][1]) == 4
    assert asked == [["s0", "s1", "s2", "s3"]] and len(handled) == 4
    assert store.gets == 0


async def test_a_failed_prefetch_is_logged_and_the_codec_asks_the_store_itself(caplog):
    store, _, writer = rings()
    msgs = sealed([capture(1)], writer)
    fast, keys = reader(store)
    fast.fail = ConnectionError("key store away")
    handled: list[Any] = []

    async def handler(e: Any) -> None:
        handled.append(e)

    events = EventProcessor(service="scoring", metrics=StageMetrics("scoring", CollectorRegistry()),
                            publisher=FakePublisher())  # fmt: skip
    previous = use_keyring(keys)
    try:
        with caplog.at_level(logging.WARNING):
            assert await events.process(msgs[0], LeadCaptured, handler) is True
    finally:
        use_keyring(previous)
    assert len(fast.calls) == 1 and store.gets == 1 and len(handled) == 1
    assert "prefetching data keys failed" in caplog.text


def test_nurture_creates_keys_only_for_scored_leads_and_only_reads_the_others():
    scored = by_type("lead.scored")
    outcome = by_type("notification.outcome")
    suppressed = {"lead_id": "ld_other", "audience": "lead", "status": "suppressed", "error": None}
    other = new_event(outcome.data.model_copy(update=suppressed), source="/test", subject="ld_other")
    sent = {"lead_id": "ld_sent", "status": "sent"}
    inert = new_event(outcome.data.model_copy(update=sent), source="/test", subject="ld_sent")
    create, existing = NurtureBatch.state_refs([scored, outcome, other, inert])
    assert create == [lead_ref(scored.data.lead_id)]  # the outcome of a scored lead: created once
    # a lead with no lead.scored here: read, never created; an outcome that changes no lead
    # (a message sent) needs no key at all: its lead's state is not read
    assert existing == [lead_ref("ld_other")]


async def test_the_publisher_gets_the_keys_of_a_batch_of_outputs_in_one_round_trip_before_encoding():
    class Producer:
        def __init__(self) -> None:
            self.values: list[bytes] = []

        async def send(self, topic: str, value: bytes, key: bytes, headers: Any) -> Any:
            self.values.append(value)
            ack: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            ack.set_result(None)
            return ack

    store, fast, keys = rings()
    producer = Producer()
    publisher = KafkaPublisher(producer, metrics=StageMetrics("scoring", CollectorRegistry()))
    outputs = [
        capture(1),
        capture(2),
        capture(1),
        new_event(by_type("lead.stage_changed").data, source="/t", subject="x"),
    ]
    previous = use_keyring(keys)
    try:
        await publisher.publish(outputs)
        await publisher.publish(outputs[:2])  # cached: no round trip
    finally:
        use_keyring(previous)
    assert fast.calls == [([], [keys.kid(person_ref(capture(n).data)) for n in (1, 2)])]  # nothing for stage_changed
    assert store.creates == 0 and len(producer.values) == 6
    assert decode_record(Record(b"", producer.values[0], encode(outputs[0]).headers), keyring=keys) == outputs[0]
