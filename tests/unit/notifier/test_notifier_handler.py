"""The notifier handler against fakes of its ports: idempotent delivery, suppression, retries,
giving up, and erasure, with no Redis, no broker and no provider."""

from __future__ import annotations

import asyncio
import functools
from datetime import UTC, datetime
from typing import Any

from prometheus_client import CollectorRegistry

from leadpipe.runtime.metrics import StageMetrics
from leadpipe.runtime.stream import BatchProcessor, RawMessage
from schemas.codec import decode
from schemas.envelope import new_event
from schemas.notification_outcome.v1 import NotificationOutcome
from schemas.notification_requested.v1 import NotificationRequested
from schemas.person_erasure_requested.v1 import erasure_request
from schemas.pii import lead_ref, use_keyring
from services.notifier.adapters.metrics import NotifierMetrics
from services.notifier.adapters.templates import TemplateRenderer
from services.notifier.config import TEMPLATES_DIR
from services.notifier.domain.message import OutboundMessage, SendResult
from services.notifier.domain.policy import RetryPolicy
from services.notifier.domain.suppression import Suppression
from services.notifier.handlers import DUE_HEADER, Notifier, RequestBatch
from tests.fakes import FakePublisher, event_processor
from tests.integration.notifier.helpers import engagement, request
from tests.unit.notifier.fakes import (
    FakeBacklog,
    FakeChannel,
    FakeClaimer,
    FakeErasedList,
    FakeLedger,
    FakeLimiter,
    FakeLookupChannel,
    FakeReader,
    FakeSuppressionList,
)
from tests.unit.test_keystore_prefetch import rings

OUT, RETRY = "notification.outcome.v1", "notification.retry.v1"


class Harness:
    def __init__(self, *results: SendResult, max_attempts: int = 3, channel: FakeChannel | None = None) -> None:
        self.publisher = FakePublisher()
        self.channel = channel or FakeChannel(*results)
        self.ledger, self.suppression, self.erased = FakeLedger(), FakeSuppressionList(), FakeErasedList()
        registry = self.registry = CollectorRegistry()
        events = event_processor("notifier", self.publisher)
        self.notifier = Notifier(
            renderer=TemplateRenderer(TEMPLATES_DIR, link_secret="s", public_url="http://x"),
            channels={"email": self.channel}, ledger=self.ledger, suppression=self.suppression,
            reader=FakeReader(self.ledger, self.suppression, self.erased),
            claimer=FakeClaimer(self.ledger, {"lead": FakeLimiter(), "internal": FakeLimiter()}),
            backlog=FakeBacklog(), publisher=self.publisher,
            dead_letter=events.dead_letter, metrics=NotifierMetrics(registry), stage=StageMetrics("notifier", registry),
            policy=RetryPolicy(max_attempts, 1.0, 10.0), erased=self.erased, clock=lambda: 1_800_000_000.0,
            jitter=lambda: 0.0,
        )  # fmt: skip

    def metric(self, name: str, labels: dict[str, str] | None = None) -> float | None:
        return self.registry.get_sample_value(name, labels or {})

    def on(self, topic: str) -> list[Any]:
        return [r for t, r in self.publisher.records if t == topic]

    def outcomes(self) -> list[NotificationOutcome]:
        return [decode(r.value, r.headers, NotificationOutcome).data for r in self.on(OUT)]


async def test_a_request_is_sent_once_and_its_outcome_published_once_even_when_delivered_twice():
    h = Harness()
    event, msg = request()
    await h.notifier.on_request(event, msg)
    await h.notifier.on_request(event, msg)  # at-least-once: the same record again
    assert len(h.channel.sent) == 1 and [o.status for o in h.outcomes()] == ["sent"]
    assert h.ledger.entries[event.data.notification_id]["published"] is True


async def test_the_key_an_outcome_is_sealed_under_is_fetched_without_blocking_and_then_cached():
    store, fast, keys = rings()
    h = Harness()
    first, second = request(), request()
    previous = use_keyring(keys)
    try:
        await h.notifier.on_request(*first)
        await h.notifier.on_request(*second)  # the same lead: its key is cached now
    finally:
        use_keyring(previous)
    assert fast.calls == [([], [keys.kid(lead_ref(first[0].data.lead_id))])]
    assert store.creates == 0 and len(h.on(OUT)) == 2  # sealed from the cache, no blocking call


async def test_an_interrupted_send_the_provider_has_in_its_log_is_recorded_sent_and_not_sent_again():
    """The chaos suite's host crash: the provider accepted the message, Redis died before the
    ledger recorded it, then the worker was killed. The next delivery asks the provider."""
    event, msg = request()
    nid = event.data.notification_id
    h = Harness(channel=FakeLookupChannel(accepted={nid: "outbox: already written at t"}))
    await h.notifier.ledger.claim(nid, now=1_799_999_000.0, lease_s=30)  # a claim whose worker died
    await h.notifier.on_request(event, msg)
    [outcome] = h.outcomes()
    assert h.channel.sent == [] and h.channel.asked == [nid]  # type: ignore[attr-defined]
    assert outcome.status == "sent" and outcome.provider_response == "outbox: already written at t"
    assert h.metric("leadpipe_notifier_reconciled_after_crash_total", {"channel": "email"}) == 1
    assert h.metric("leadpipe_notifier_resent_after_crash_total", {"channel": "email"}) is None


async def test_an_interrupted_send_the_provider_does_not_have_is_sent_again():
    event, msg = request()
    nid = event.data.notification_id
    h = Harness(channel=FakeLookupChannel())
    await h.notifier.ledger.claim(nid, now=1_799_999_000.0, lease_s=30)
    await h.notifier.on_request(event, msg)
    assert [m.notification_id for m in h.channel.sent] == [nid] and h.channel.asked == [nid]  # type: ignore[attr-defined]
    assert [o.status for o in h.outcomes()] == ["sent"]
    assert h.metric("leadpipe_notifier_resent_after_crash_total", {"channel": "email"}) == 1


async def test_a_first_send_does_not_ask_the_provider():
    h = Harness(channel=FakeLookupChannel())
    await h.notifier.on_request(*request())
    assert len(h.channel.sent) == 1 and h.channel.asked == []  # type: ignore[attr-defined]


async def test_a_suppressed_address_is_not_sent_to_and_ends_suppressed():
    h = Harness()
    await h.suppression.add(Suppression("email", "dana@example.com", "unsubscribed"))
    await h.notifier.on_request(*request(audience="lead", template="nurture_content", address="Dana@Example.com",
                                         variables={"lead": {"name": "Dana"}}))  # fmt: skip
    assert h.channel.sent == [] and [o.status for o in h.outcomes()] == ["suppressed"]


async def test_a_transient_provider_failure_goes_to_the_retry_topic_with_its_due_time():
    h = Harness(SendResult("transient", "451 try later", "smtp_4xx"))
    event, msg = request()
    await h.notifier.on_request(event, msg)
    [retry] = h.on(RETRY)
    assert h.outcomes() == [] and float(dict(retry.headers)[DUE_HEADER]) > 1_800_000_000.0
    assert h.ledger.entries[event.data.notification_id]["state"] == "requested"


async def test_a_request_out_of_attempts_is_dead_lettered_and_ends_failed():
    h = Harness(*[SendResult("transient", "451 try later", "smtp_4xx")] * 2, max_attempts=1)
    event, msg = request()
    await h.notifier.on_request(event, msg)
    await h.notifier.on_retry(event, msg)
    assert h.publisher.dead_letters() == ["notification.requested.v1.dlq"]
    assert [o.status for o in h.outcomes()] == ["failed"]


async def test_an_unsubscribe_puts_the_address_on_the_suppression_list():
    h = Harness()
    await h.notifier.on_engagement(engagement("unsubscribed", email="Dana@Example.com", channel="email"))
    assert await h.suppression.reason("email", "dana@example.com") == "unsubscribed"


async def test_an_erasure_suppresses_the_persons_hashes_and_publishes_a_receipt():
    h = Harness()
    req = erasure_request(h.erased.secret, request_id="r-1", requested_at=datetime.now(UTC), requested_by="test",
                          email="dana@example.com")  # fmt: skip
    await h.notifier.on_erasure(new_event(req, source="/t", subject=req.subject_hash))
    [receipt] = h.publisher.events
    assert receipt.data.service == "notifier" and len(h.erased.digests) == 1


class SlowFor(FakeChannel):
    """Answers ``451`` for one address, slowly enough that the batch's other requests overlap."""

    def __init__(self, failing: str) -> None:
        super().__init__()
        self.failing = failing
        self.in_flight = self.most = 0

    async def send(self, message: OutboundMessage) -> SendResult:
        self.in_flight += 1
        self.most = max(self.most, self.in_flight)
        await asyncio.sleep(0.01)
        self.in_flight -= 1
        self.sent.append(message)
        if message.to == self.failing:
            return SendResult("transient", "451 try later", "smtp_4xx")
        return SendResult("ok", "250 accepted")


async def test_a_batch_of_requests_runs_them_at_once_and_sends_a_request_delivered_twice_once():
    h = Harness(channel=SlowFor("later@sales.example"))
    requests = [request(address=f"rep{n}@sales.example") for n in range(4)]
    failing = request(address="later@sales.example")
    garbage = RawMessage("notification.requested.v1", 0, 99, b"k", b"not an event", [])
    msgs = [m for _, m in requests] + [requests[0][1], failing[1], garbage]  # requests[0] twice
    batch = BatchProcessor(event_processor("notifier", h.publisher), RequestBatch(),
                           {"notification.requested.v1": NotificationRequested}, concurrency=8,
                           for_record=lambda msg: functools.partial(h.notifier.on_request, msg=msg))  # fmt: skip
    assert await batch.process(msgs) == 6
    assert h.channel.most > 1  # type: ignore[attr-defined]
    sent = sorted(o.notification_id for o in h.outcomes())
    assert sent == sorted(e.data.notification_id for e, _ in requests)  # each once, the failing one not yet
    assert {o.status for o in h.outcomes()} == {"sent"} and h.metric("leadpipe_notifier_duplicate_requests_total") == 1
    [retry] = h.on(RETRY)  # the failing request forwarded as consumed, with its due time
    assert retry.value == failing[1].value and float(dict(retry.headers)[DUE_HEADER]) > 1_800_000_000.0
    assert h.publisher.dead_letters() == ["notification.requested.v1.dlq"]  # the garbage only
