"""Event in -> delivery decision -> provider call -> outcome out.

One ``notification.requested`` ends in exactly one ``notification.outcome``: the ledger
holds the terminal state and the outcome record, and the outcome is (re)published until the
ledger says it was. Transient failures, ``not_before`` and per-recipient limits go to the
retry topic with a due time, so the source partition never waits on a provider. The lead-facing
per-recipient limit never holds a rep's or a manager's alert (``policy.limit_scope``).

Redis is rebuilt from Kafka when its keyspace is empty (``ensure_built``, the runtime's
``RebuildGuard`` given by the bootstrap): at start, and whenever a request finds the built
marker gone (Redis wiped under the worker). No request is decided while a rebuild runs, and a
claim fails atomically without the marker.

Everything goes out through the ``Publisher`` port (outcomes, retries); a request that ran out
of attempts is dead-lettered through the runtime's ``dead_letter`` (given by the bootstrap).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from leadpipe.runtime.erasure import erasure_receipt
from leadpipe.runtime.keystore import prepare_keys
from leadpipe.runtime.metrics import StageMetrics
from leadpipe.runtime.publish import Publisher
from leadpipe.runtime.retry import retry_transient
from leadpipe.runtime.stream import RawMessage
from schemas.codec import Headers, Record, encode
from schemas.envelope import Envelope, new_event
from schemas.identity import erasure_hashes, normalise_email, normalise_phone
from schemas.lead_engagement.v1 import LeadEngagement
from schemas.notification_outcome.v1 import NotificationOutcome
from schemas.notification_requested.v1 import NotificationRequested
from schemas.person_erasure_requested.v1 import PersonErasureRequested
from schemas.pii import sealing_ref
from services.notifier.adapters.metrics import NotifierMetrics
from services.notifier.adapters.outbox import erase_from_outbox
from services.notifier.adapters.rate_gate import TokenBucket
from services.notifier.domain.consent import consent_refusal
from services.notifier.domain.erasure import erased_refusal
from services.notifier.domain.errors import RenderError
from services.notifier.domain.message import SendResult
from services.notifier.domain.policy import Action, RetryPolicy, after_failure, before_send, limit_scope
from services.notifier.domain.suppression import suppressions_for
from services.notifier.ports import (
    ChannelSender,
    Claimer,
    DeliveryLookup,
    ErasedList,
    Ledger,
    Renderer,
    RequestReader,
    RetryBacklog,
    SuppressionList,
)

log = logging.getLogger(__name__)

SOURCE = "/leadpipe/notifier"
DUE_HEADER = "notifier_due_at"
REASON_HEADER = "notifier_reason"


@dataclass(frozen=True, slots=True)
class Topics:
    requested: str = "notification.requested.v1"
    outcome: str = "notification.outcome.v1"
    retry: str = "notification.retry.v1"
    engagement: str = "lead.engagement.v1"


def due_at(msg: RawMessage) -> float:
    for name, value in msg.headers:
        if name == DUE_HEADER:
            try:
                return float(value)
            except ValueError:
                return 0.0
    return 0.0


#: Sends a consumed record to its topic's dead-letter topic: (record, error, reason, event,
#: topic, headers) -> None (``EventProcessor.dead_letter``).
DeadLetter = Callable[..., Awaitable[None]]


class Notifier:
    def __init__(
        self,
        *,
        renderer: Renderer,
        channels: Mapping[str, ChannelSender],
        reader: RequestReader,
        claimer: Claimer,
        ledger: Ledger,
        suppression: SuppressionList,
        backlog: RetryBacklog,
        publisher: Publisher,
        dead_letter: DeadLetter,
        metrics: NotifierMetrics,
        stage: StageMetrics,
        topics: Topics | None = None,
        policy: RetryPolicy | None = None,
        channel_rates: Mapping[str, float] | None = None,
        lease_s: float = 30.0,
        clock: Callable[[], float] = time.time,
        jitter: Callable[[], float] = random.random,
        max_record_bytes: int = 1_000_000,
        ensure_built: Callable[[], Awaitable[None]] | None = None,
        erased: ErasedList | None = None,
        outbox_dirs: Sequence[Path] = (),
    ):
        self.renderer = renderer
        self.channels = channels
        self.ledger = ledger
        self.suppression = suppression
        self.backlog = backlog
        self.publisher = publisher
        self.dead_letter = dead_letter
        self.metrics = metrics
        self.stage = stage
        self.topics = topics or Topics()
        self.policy = policy or RetryPolicy()
        self.gates = {name: TokenBucket(rate) for name, rate in (channel_rates or {}).items()}
        self.lease_s = lease_s
        self.clock = clock
        self.jitter = jitter
        self.max_record_bytes = max_record_bytes
        self._ensure_built = ensure_built
        self.erased = erased
        self.outbox_dirs = tuple(dict.fromkeys(outbox_dirs))
        #: Reads a request's ledger entry, suppression and erasure together (``adapters/redis_reads``:
        #: one round trip).
        self.reader = reader
        #: Takes the recipient's rate-limit slot and the send lease (``adapters/redis_claim``: one
        #: script; a busy or finished id spends no slot).
        self.claimer = claimer
        #: Ids this worker is between claiming and recording (guards a send whose lease a wipe lost).
        self._sending: set[str] = set()

    # -- the keyspace -----------------------------------------------------------------------
    async def ensure_built(self) -> None:
        """Waits for Redis to be rebuilt from the topics if its built marker is gone."""
        if self._ensure_built is not None:
            await self._ensure_built()

    # -- engagement: the suppression list -------------------------------------------------
    async def on_engagement(self, event: Envelope[Any]) -> None:
        data: LeadEngagement = event.data
        if event.synthetic:
            return
        for entry in suppressions_for(
            kind=data.kind.value,
            channel=data.channel.value,
            bounce_type=data.bounce_type,
            email=data.identity.email,
            phone=data.identity.phone,
        ):
            await self.suppression.add(entry)
            self.metrics.suppressions.labels(entry.reason).inc()
            log.info("address suppressed", extra={"event_id": event.id, "reason": entry.reason})

    # -- erasure ----------------------------------------------------------------------------
    async def on_erasure(self, event: Envelope[Any]) -> None:
        """Puts the person's addresses on the erased list (keyed hashes only) and redacts the dev
        outbox. The ledger holds ids, states and provider responses, no address: left as is."""
        req: PersonErasureRequested = event.data
        items: list[tuple[str, str, int]] = []
        digests: list[str] = []
        if self.erased is not None:
            digests = req.identifier_hashes or erasure_hashes(self.erased.secret, email=req.email, phone=req.phone)
            added = await self.erased.add(digests, req.requested_at)
            items.append(("redis:notifier:erased", "keyed hash suppressed", added))
        addresses = {a for a in (req.email and normalise_email(req.email), req.phone and req.phone.strip()) if a}
        if req.phone:
            addresses.add(normalise_phone(req.phone) or req.phone.strip())
        lines = files = 0
        for directory in self.outbox_dirs:
            n_lines, n_files = erase_from_outbox(directory, addresses, set(req.lead_ids))
            lines, files = lines + n_lines, files + n_files
        if self.outbox_dirs:
            items.append(("file:outbox.jsonl", "lines redacted", lines))
            items.append(("file:outbox/*.eml", "deleted", files))
        log.info("erasure honoured", extra={"event_id": event.id, "request_id": req.request_id})
        receipt = erasure_receipt(
            event, service="notifier", erased_at=datetime.fromtimestamp(self.clock(), UTC), items=items,
            remaining=[
                "notification.requested.v1 / notification.outcome.v1 and their DLQs: append-only, until retention",
                "messages already delivered by a real provider (SMTP, SMS): outside the pipeline",
            ],
            suppressed_hashes=digests,
        )  # fmt: skip
        await self.publisher.publish([receipt])

    # -- requests ---------------------------------------------------------------------------
    async def on_retry(self, event: Envelope[Any], msg: RawMessage) -> None:
        self.metrics.retry_backlog.set(await self.backlog.remove(event.data.notification_id))
        await self.on_request(event, msg)

    async def on_request(self, event: Envelope[Any], msg: RawMessage) -> None:
        req: NotificationRequested = event.data
        nid = req.notification_id
        channel = req.channel.value
        lead = req.audience == "lead"
        state = await self.reader.read(nid, channel, req.recipient.address, lead=lead)
        if not state.entry.built:
            await self.ensure_built()
            state = await self.reader.read(nid, channel, req.recipient.address, lead=lead)
        entry = state.entry
        if entry.terminal:
            self.metrics.duplicates.inc()
            if not entry.published and entry.outcome is not None:
                await self._publish_outcome(nid, entry.state or "", entry.outcome)
            log.info("request already %s, not sent again", entry.state, extra={"event_id": event.id})
            return

        now = self.clock()
        reason = state.suppressed
        if reason is None and lead and self.erased is not None:
            reason = erased_refusal(
                purpose=self.renderer.purpose(req.template),
                audience=req.audience,
                erased_at=state.erased_at,
                basis=None if req.consent is None else req.consent.basis,
                consent_given_at=None if req.consent is None else req.consent.given_at,
            )
        refusal = consent_refusal(
            purpose=self.renderer.purpose(req.template),
            audience=req.audience,
            channel=channel,
            basis_channels=None if req.consent is None else [c.value for c in req.consent.channels],
        )
        decision = before_send(
            now=datetime.fromtimestamp(now, UTC),
            synthetic=event.synthetic,
            expires_at=req.expires_at,
            not_before=req.not_before,
            suppressed_reason=reason,
            consent_refusal=refusal,
        )
        if decision.action is Action.SYNTHETIC:
            await self._finish(event, "sent", entry.attempts, provider_response=decision.reason)
            return
        if decision.action in (Action.EXPIRED, Action.SUPPRESSED):
            if refusal is not None and decision.reason == refusal:
                self.metrics.consent_refusals.labels(channel).inc()
                log.warning("marketing refused: %s", refusal, extra={"event_id": event.id, "lead_id": req.lead_id})
            await self._finish(event, decision.action.value, entry.attempts, error=decision.reason)
            return
        if decision.action is Action.DEFER:
            assert decision.until is not None
            await self._defer(event, msg, decision.until.timestamp(), decision.reason)
            return

        sender = self.channels.get(channel)
        if sender is None:
            await self._finish(event, "failed", entry.attempts, error=f"no adapter serves channel {channel!r}")
            return
        try:
            message = self.renderer.render(req)
        except RenderError as exc:
            await self._finish(event, "failed", entry.attempts, error=str(exc))
            return

        scope = limit_scope(req.audience)
        claim = await self.claimer.claim(
            nid, now=now, lease_s=self.lease_s, scope=scope, channel=channel, address=req.recipient.address
        )
        if claim.status == "limited":
            self.metrics.recipient_limited.labels(scope).inc()
            await self._defer(event, msg, claim.limited_until, f"{scope} recipient rate limit")
            return
        if claim.status == "unbuilt":
            # Wiped since the read above: rebuild, then decide again from the rebuilt ledger.
            await self.ensure_built()
            await self.on_request(event, msg)
            return
        if claim.status == "busy":
            # Another delivery is mid-send; look again when its lease runs out.
            await self._defer(event, msg, claim.lease_until + 0.1, "in flight elsewhere")
            return
        if claim.status != "claimed":
            self.metrics.duplicates.inc()
            return
        if claim.attempts > self.policy.max_attempts:
            await self._give_up(event, msg, claim.attempts - 1, "no attempts left")
            return
        if claim.previous == "sending":
            # The one duplicate window: a delivery died between claiming and recording the
            # provider's answer. Ask the provider first where it can say; else resend with the
            # same Message-ID / Idempotency-Key.
            if isinstance(sender, DeliveryLookup):
                found = await sender.find_sent(nid)
                if found is not None:
                    self.metrics.reconciled_after_crash.labels(channel).inc()
                    log.warning("an interrupted send had reached the provider: recorded, not resent",
                                extra={"event_id": event.id})  # fmt: skip
                    await self._record_sent(event, claim.attempts, found)
                    return
            self.metrics.resent_after_crash.labels(channel).inc()
            log.warning("resending after an interrupted send", extra={"event_id": event.id})

        if nid in self._sending:
            # This worker is sending it now and Redis lost its lease (wiped): wait for that send.
            await self.ledger.release(nid)
            await self._defer(event, msg, now + 1.0, "in flight in this worker")
            return
        self._sending.add(nid)
        try:
            gate = self.gates.get(channel)
            if gate is not None:
                await gate.acquire()
            started = time.perf_counter()
            try:
                result = await asyncio.wait_for(sender.send(message), timeout=self.lease_s * 0.8)
            except TimeoutError:
                result = SendResult("transient", f"no answer within {self.lease_s * 0.8:.1f}s", "timeout")
            self.metrics.send_duration.labels(channel).observe(time.perf_counter() - started)

            if result.ok:
                # Recorded first, before anything else can fail: this write closes the window.
                await self._record_sent(event, claim.attempts, result.response)
                return
        finally:
            self._sending.discard(nid)
        self.metrics.provider_errors.labels(channel, result.error_kind or "unknown").inc()
        nxt = after_failure(
            result,
            attempt=claim.attempts,
            policy=self.policy,
            now=datetime.fromtimestamp(self.clock(), UTC),
            jitter=self.jitter(),
        )
        if nxt.retry_at is not None:
            await self.ledger.release(nid)
            self.stage.retries.labels(self.stage.service, msg.topic).inc()
            await self._defer(event, msg, nxt.retry_at.timestamp(), f"attempt {claim.attempts}: {result.response}")
        elif nxt.dead_letter:
            await self._give_up(event, msg, claim.attempts, result.response)
        else:
            await self._finish(
                event, "failed", claim.attempts, provider_response=result.response, error="permanent failure"
            )
        return

    # -- endings ----------------------------------------------------------------------------
    async def _record_sent(self, event: Envelope[Any], attempts: int, response: str) -> None:
        """Record a send the provider accepted, retrying the same write through a Redis (or
        broker) blip. Giving up here would let the handler run again, find the claim still
        ``sending`` and resend once the lease ran out: the message would go out twice."""
        await retry_transient(lambda: self._finish(event, "sent", attempts, provider_response=response),
                              what="recording a send the provider accepted", base_s=0.1,
                              extra={"event_id": event.id})  # fmt: skip

    async def _give_up(self, event: Envelope[Any], msg: RawMessage, attempts: int, response: str) -> None:
        await self.dead_letter(msg, f"gave up after {attempts} attempts: {response}", "retries_exhausted", event,
                               topic=self.topics.requested, headers=_own_headers(msg.headers))  # fmt: skip
        await self._finish(
            event, "failed", attempts, provider_response=response, error=f"gave up after {attempts} attempts"
        )

    async def _defer(self, event: Envelope[Any], msg: RawMessage, due: float, reason: str) -> None:
        req: NotificationRequested = event.data
        if req.expires_at is not None and due >= req.expires_at.timestamp():
            entry = await self.ledger.get(req.notification_id)
            await self._finish(event, "expired", entry.attempts, error=f"would expire before it could go ({reason})")
            return
        await self.ledger.mark_requested(req.notification_id)
        headers = _own_headers(msg.headers)
        headers += [(DUE_HEADER, f"{due:.3f}".encode()), (REASON_HEADER, reason[:500].encode())]
        await self._send(self.topics.retry, Record(key=msg.key or b"", value=msg.value or b"", headers=headers))
        self.metrics.retry_backlog.set(await self.backlog.add(req.notification_id, due))
        log.info("deferred %.1fs: %s", max(0.0, due - self.clock()), reason, extra={"event_id": event.id})

    async def _finish(
        self,
        event: Envelope[Any],
        status: str,
        attempts: int,
        *,
        provider_response: str | None = None,
        error: str | None = None,
    ) -> None:
        req: NotificationRequested = event.data
        completed = datetime.fromtimestamp(self.clock(), UTC)
        outcome = new_event(
            NotificationOutcome(
                notification_id=req.notification_id,
                lead_id=req.lead_id,
                status=status,
                channel=req.channel,
                audience=req.audience,
                attempts=attempts,
                completed_at=completed,
                provider_response=provider_response[:2000] if provider_response else None,
                error=error[:2000] if error else None,
                template=req.template,
                assignment_id=req.assignment_id,
            ),
            source=SOURCE,
            subject=req.lead_id,
            id=f"outcome-{req.notification_id}",
            cause=event,
        )
        # privacy hook: the key the outcome is sealed under, cached in one async round trip (as
        # ``encode`` would get or create it, without blocking the loop; a no-op when cached)
        await prepare_keys([sealing_ref(outcome.data)])
        record = encode(outcome, max_bytes=self.max_record_bytes)
        if not await self.ledger.finish(req.notification_id, status, record):
            entry = await self.ledger.get(req.notification_id)
            if entry.published or entry.outcome is None:
                return
            record, status = entry.outcome, entry.state or status
        elif not event.synthetic:
            self.metrics.sends.labels(req.channel.value, status).inc()
            if status == "sent" and req.template == "rep_alert" and req.lead_captured_at is not None:
                self.metrics.capture_to_rep_alert.observe(
                    max(0.0, completed.timestamp() - req.lead_captured_at.timestamp())
                )
        await self._publish_outcome(req.notification_id, status, record)
        log.info("notification %s", status, extra={"event_id": event.id, "lead_id": req.lead_id})

    async def _publish_outcome(self, notification_id: str, state: str, record: Record) -> None:
        await self._send(self.topics.outcome, record)
        await self.ledger.mark_published(notification_id, state, record)

    async def _send(self, topic: str, record: Record) -> None:
        await self.publisher.publish_record(topic, record)


class RequestBatch:
    """The runtime's ``BatchState`` for notification requests (``BatchProcessor`` with
    ``for_record``: ``Notifier.on_request`` needs the consumed record to defer or dead-letter it).

    Requests are independent: keyed by notification id (a request delivered twice in one batch
    runs once after the other; the second finds the first's ledger entry), and decided one by one
    against the ledger, so there is nothing to read before the batch or write after it. What the
    batch buys is concurrency: the requests' Redis commands share round trips and their outcomes
    share produce requests, and the batch's offsets are acknowledged once, after every outcome."""

    def key(self, event: Envelope[Any]) -> str | None:
        return str(event.data.notification_id)

    async def begin(self, events: Sequence[Envelope[Any]]) -> None:
        return None

    async def commit(self) -> None:
        return None

    async def abandon(self) -> None:
        return None


def _own_headers(headers: Headers) -> Headers:
    """The consumed record's headers without the notifier's retry bookkeeping."""
    return [(k, v) for k, v in headers if not k.startswith("notifier_")]
