"""Erase a person (publish ``person.erasure_requested`` and wait for the services' receipts) and
export what the pipeline holds on a person, read from the topics alone.

The export is a projection of the log: captures (with their consent proof), engagements, scores
with their reasons, stage history, assignments, messages requested and their outcomes, erasure
receipts, and the dead letters that carry the person's address. What it cannot see is listed in
its ``limits``: Redis state is a copy of these topics, the dev outbox and the ingest spool are
files on the services' hosts.

Whose record is it (a phone is weak, as in scoring): a capture or engagement is the person's when
it carries their email, or their phone and no email of its own; a lead is theirs when a
``lead.scored`` profile says so by the same rule; everything keyed by lead id follows the lead.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import orjson

from leadpipe.ops import OpsError
from leadpipe.ops.reader import partitions, plain_consumer, read
from leadpipe.ops.settings import OpsSettings
from leadpipe.runtime.kafka import make_producer, send_record
from leadpipe.runtime.keystore import destroy_keys
from schemas.codec import Record, decode_record, encode
from schemas.envelope import Envelope, new_event
from schemas.errors import DecodeError
from schemas.identity import normalise_email, normalise_phone
from schemas.lead_assigned.v1 import LeadAssigned
from schemas.lead_captured.v1 import LeadCaptured
from schemas.lead_engagement.v1 import LeadEngagement
from schemas.lead_scored.v1 import LeadScored
from schemas.lead_stage_changed.v1 import LeadStageChanged
from schemas.notification_outcome.v1 import NotificationOutcome
from schemas.notification_requested.v1 import NotificationRequested
from schemas.person_erased.v1 import PersonErased
from schemas.person_erasure_requested.v1 import PersonErasureRequested, erasure_request
from schemas.pii import TOKEN_PREFIX, current_keyring, open_fields, refs_for
from schemas.topics import TOPICS

EVENT_TOPICS = (
    "lead.captured.v1",
    "lead.engagement.v1",
    "lead.scored.v1",
    "lead.stage_changed.v1",
    "lead.assigned.v1",
    "notification.requested.v1",
    "notification.outcome.v1",
    "person.erased.v1",
)
SERVICES = ("scoring", "nurture", "notifier")

LIMITS = [
    "read from the topics: events older than a topic's retention are not in it",
    "Redis holds copies of these topics (scoring profiles, nurture states, notifier ledger): not read",
    "the dev outbox (NOTIFIER_OUTBOX_DIR) and the ingest spool are files on the services' hosts: not read",
    "messages a real provider delivered are in that provider's logs, not here",
]


def _norm_phone(phone: str) -> str:
    return normalise_phone(phone) or phone.strip()


class Subject:
    """The person as the operator named them, and the rule for whose record a record is."""

    def __init__(self, email: str | None, phone: str | None):
        self.email = normalise_email(email) if email else None
        self.phone = _norm_phone(phone) if phone else None

    def owns(self, email: str | None, phone: str | None) -> bool:
        if self.email and email and normalise_email(email) == self.email:
            return True
        return bool(self.phone and phone and not email and _norm_phone(phone) == self.phone)


def person_export(
    events: Iterable[Envelope[Any]],
    *,
    email: str | None = None,
    phone: str | None = None,
    dead_letters: Iterable[dict[str, Any]] = (),
) -> dict[str, Any]:
    """One JSON-ready document of everything the topics hold on the person."""
    who = Subject(email, phone)
    events = list(events)
    lead_ids: set[str] = set()
    for e in events:
        if isinstance(e.data, LeadScored) and who.owns(e.data.profile.email, e.data.profile.phone):
            lead_ids.add(e.data.lead_id)
    out: dict[str, Any] = {
        "subject": {"email": email, "phone": phone},
        "exported_at": datetime.now(UTC).isoformat(),
        "lead_ids": sorted(lead_ids),
        "captures": [],
        "consent_records": [],
        "engagements": [],
        "scores": [],
        "stage_history": [],
        "assignments": [],
        "messages": [],
        "erasure_receipts": [],
        "dead_letters": list(dead_letters),
        "limits": LIMITS,
    }
    outcomes = {e.data.notification_id: e.data for e in events if isinstance(e.data, NotificationOutcome)}
    for e in events:
        d = e.data
        if isinstance(d, LeadCaptured) and who.owns(d.identity.email, d.identity.phone):
            out["captures"].append({"event_id": e.id, "time": e.time.isoformat(), **d.model_dump(mode="json")})
            if d.consent is not None:
                out["consent_records"].append(
                    {"capture_id": e.id, "source_kind": d.source_kind.value, "form_id": d.context.form_id,
                     "show_id": d.context.show_id, **d.consent.model_dump(mode="json")}
                )  # fmt: skip
        elif isinstance(d, LeadEngagement) and who.owns(d.identity.email, d.identity.phone):
            out["engagements"].append({"event_id": e.id, **d.model_dump(mode="json")})
        elif isinstance(d, LeadScored) and d.lead_id in lead_ids:
            out["scores"].append(
                {"lead_id": d.lead_id, "scored_at": d.scored_at.isoformat(), "model_version": d.model_version,
                 "score": d.score, "fit_score": d.fit_score, "engagement_score": d.engagement_score,
                 "grade": d.grade.value, "reasons": [r.model_dump(mode="json") for r in d.reasons]}
            )  # fmt: skip
        elif isinstance(d, LeadStageChanged) and d.lead_id in lead_ids:
            out["stage_history"].append(d.model_dump(mode="json"))
        elif isinstance(d, LeadAssigned) and d.lead_id in lead_ids:
            out["assignments"].append(d.model_dump(mode="json"))
        elif isinstance(d, NotificationRequested) and d.lead_id in lead_ids:
            o = outcomes.get(d.notification_id)
            out["messages"].append(
                {"notification_id": d.notification_id, "lead_id": d.lead_id, "audience": d.audience,
                 "channel": d.channel.value, "template": d.template, "to": d.recipient.address,
                 "requested_at": d.requested_at.isoformat(),
                 "basis": None if d.consent is None else d.consent.model_dump(mode="json"),
                 "status": o.status if o else None,
                 "completed_at": o.completed_at.isoformat() if o else None}
            )  # fmt: skip
    return out


async def read_all(settings: OpsSettings, topics: Iterable[str]) -> tuple[list[Envelope[Any]], list[Record]]:
    """Every record of ``topics`` from the beginning: decoded events, and the raw records of any
    dead-letter topic among them. A topic the broker does not have is skipped."""
    consumer = plain_consumer(settings)
    await consumer.start()
    try:
        tps = []
        for topic in topics:
            try:
                tps += await partitions(consumer, topic)
            except OpsError:
                continue
        starts = await consumer.beginning_offsets(tps)
        events: list[Envelope[Any]] = []
        raw: list[Record] = []
        async for item in read(consumer, dict(starts)):
            if item.topic.endswith(".dlq"):
                raw.append(item.record)
                continue
            try:
                events.append(decode_record(item.record))
            except DecodeError:
                continue
        return events, raw
    finally:
        await consumer.stop()


def dead_letters_of(records: Iterable[Record], *, email: str | None, phone: str | None) -> list[dict[str, Any]]:
    """Dead-lettered records whose raw bytes carry the person's email or phone (as written)."""
    needles = [n.encode() for n in (email and email.strip(), email and normalise_email(email), phone) if n]
    out = []
    for r in records:
        value = _opened(r.value)
        if any(n in value for n in needles):
            out.append({"headers": {k: v.decode("utf-8", "replace") for k, v in r.headers},
                        "value": value.decode("utf-8", "replace")})  # fmt: skip
    return out


def _opened(value: bytes | None) -> bytes:
    """A raw value with its sealed personal fields opened while the person's key exists (privacy
    hook, crypto-shredding); as it is when they cannot be (no keyring, erased, not JSON)."""
    ring = current_keyring()
    if not value or ring is None or TOKEN_PREFIX.encode() not in value:
        return value or b""
    try:
        return orjson.dumps(open_fields(orjson.loads(value), ring.open))
    except (orjson.JSONDecodeError, DecodeError):
        return value


async def export_person(settings: OpsSettings, *, email: str | None, phone: str | None) -> dict[str, Any]:
    dlqs = [name for name, spec in TOPICS.items() if spec.dead_letter_of]
    events, raw = await read_all(settings, [*EVENT_TOPICS, *dlqs])
    return person_export(events, email=email, phone=phone, dead_letters=dead_letters_of(raw, email=email, phone=phone))


async def request_erasure(
    settings: OpsSettings,
    *,
    email: str | None,
    phone: str | None,
    lead_ids: list[str],
    requested_by: str,
    wait_s: float = 0.0,
) -> tuple[PersonErasureRequested, list[PersonErased]]:
    """Publishes the request; with ``wait_s`` waits that long for the receipts of every service."""
    req = erasure_request(
        settings.leadpipe_privacy_secret,
        request_id=str(uuid.uuid4()),
        requested_at=datetime.now(UTC),
        requested_by=requested_by,
        email=email,
        phone=phone,
        lead_ids=lead_ids,
    )
    # privacy hook: the person's data keys go before the request does (crypto-shredding)
    destroy_keys(refs_for(email=email, phone=phone, lead_ids=lead_ids))
    producer = make_producer(settings)
    await producer.start()
    try:
        event = new_event(req, source="/leadpipe/cli", subject=req.subject_hash)
        await send_record(producer, req.topic(), encode(event))
    finally:
        await producer.stop()
    receipts: list[PersonErased] = []
    if wait_s > 0:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_s
        while loop.time() < deadline:
            events, _ = await read_all(settings, ["person.erased.v1"])
            receipts = [
                e.data for e in events if isinstance(e.data, PersonErased) and e.data.request_id == req.request_id
            ]
            if {r.service for r in receipts} >= set(SERVICES):
                # every service has answered: the request's own copy of the identifiers goes too
                destroy_keys([f"request:{req.request_id}"])
                break
            await asyncio.sleep(1.0)
    return req, receipts


async def forget_answered_requests(settings: OpsSettings) -> int:
    """Destroys the data key of every erasure request that scoring, nurture and the notifier have
    all answered (``person.erased.v1``): the request's own copy of the person's identifiers on
    ``person.erasure_requested.v1`` (and its DLQ) can no longer be read. A request still waiting
    for a receipt keeps its key, so a service that restarts mid-erasure can still read it.
    Returns how many keys went (a key destroyed before counts 0)."""
    events, _ = await read_all(settings, ["person.erased.v1"])
    answered: dict[str, set[str]] = {}
    for e in events:
        if isinstance(e.data, PersonErased):
            answered.setdefault(e.data.request_id, set()).add(e.data.service)
    return destroy_keys(f"request:{rid}" for rid, services in answered.items() if services >= set(SERVICES))
