"""The notifier honours an erasure: the addresses go on its erased list by keyed hash only, a
marketing request to them is refused unless the person opted in again after the erasure, and a
wiped Redis gets the list back from the notifier's own receipts (which hold no address)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from aiokafka import AIOKafkaProducer

from leadpipe.runtime.kafka import ensure_topics, make_producer, publish
from leadpipe.runtime.settings import ServiceSettings
from schemas.codec import decode_record
from schemas.envelope import new_event
from schemas.person_erasure_requested.v1 import erasure_request
from schemas.topics import TopicSpec
from services.notifier.adapters.rebuild import rebuild
from services.notifier.domain.erasure import ERASED_ERROR
from tests.integration.notifier.helpers import request


def erasure(secret: str, email: str) -> Any:
    req = erasure_request(secret, request_id=f"r-{uuid.uuid4().hex[:6]}", requested_at=datetime.now(UTC),
                          requested_by="test", email=email, phone="+14155550100")  # fmt: skip
    return new_event(req, source="/tests", subject=req.subject_hash)


async def test_an_erased_address_gets_no_marketing_unless_consent_was_given_after_the_erasure(make_harness: Any):
    h = make_harness()
    secret = h.settings.leadpipe_privacy_secret
    await h.notifier.on_erasure(erasure(secret, "Dana@Example.com"))
    [receipt] = h.sink.events
    assert receipt.data.service == "notifier" and len(receipt.data.suppressed_hashes) == 2
    assert b"dana" not in receipt.data.model_dump_json().lower().encode()
    keys = [k async for k in h.redis.scan_iter(match=f"{h.settings.notifier_redis_prefix}erased:*")]
    assert len(keys) == 2 and not any(b"dana" in k for k in keys)

    old = {"channels": ["email"], "basis": "consent", "given_at": datetime.now(UTC) - timedelta(days=3)}
    await h.notifier.on_request(*request(audience="lead", template="nurture_content", address="dana@example.com",
                                         consent=old, nid="n-old"))  # fmt: skip
    again = {"channels": ["email"], "basis": "consent", "given_at": datetime.now(UTC) + timedelta(seconds=1)}
    await h.notifier.on_request(*request(audience="lead", template="nurture_content", address="dana@example.com",
                                         consent=again, nid="n-again"))  # fmt: skip
    outcomes = {o.data.notification_id: o.data for o in map(decode_record, h.sink.on("notification.outcome.v1"))}
    assert outcomes["n-old"].status == "suppressed" and ERASED_ERROR in (outcomes["n-old"].error or "")
    assert ERASED_ERROR not in (outcomes["n-again"].error or ""), outcomes["n-again"]


async def test_a_wiped_redis_gets_the_erased_list_back_from_the_notifiers_receipts(
    make_harness: Any, kafka_bootstrap: str, unique: str
):
    topic = f"nr.{unique}.erased"
    await ensure_topics(kafka_bootstrap, [TopicSpec(topic, "subject hash", 1)])
    h = make_harness(kafka_bootstrap_servers=kafka_bootstrap)
    await h.notifier.on_erasure(erasure(h.settings.leadpipe_privacy_secret, "sam@example.com"))
    [receipt] = h.sink.events
    producer: AIOKafkaProducer = make_producer(ServiceSettings(kafka_bootstrap_servers=kafka_bootstrap,
                                                               redis_url="redis://unused"))  # fmt: skip
    await producer.start()
    try:
        await publish(producer, receipt, max_bytes=10**6, topic=topic)
    finally:
        await producer.stop()
    erased = h.notifier.erased
    assert await erased.erased_at("email", "sam@example.com") is not None
    for key in [k async for k in h.redis.scan_iter(match=f"{h.settings.notifier_redis_prefix}*")]:
        await h.redis.delete(key)
    assert await erased.erased_at("email", "sam@example.com") is None

    done = await rebuild(h.settings, h.notifier.ledger, h.notifier.suppression, erased=erased, erased_topic=topic,
                         outcome_topic=h.settings.notifier_outcome_topic,
                         engagement_topic=h.settings.notifier_engagement_topic)  # fmt: skip

    assert done.erased == 2
    assert await erased.erased_at("email", " SAM@example.com") is not None
    assert await erased.erased_at("sms", "+1 415 555 0100") is not None
