"""On what basis did we message this person on this date? Answered from the topics alone.

Every message nurture requests for a lead names the basis it rests on (``consent`` on
``notification.requested``: channels, ``consent`` or ``legitimate_interest``, when, which
capture); the notifier's outcome says whether it went; the capture holds the proof (the text
shown, when, where). This joins the three for one address. A lead message that went without a
basis was one the notifier's template catalog calls transactional (it refuses marketing without
one), e.g. the reply to the person's own request.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import date, datetime
from typing import Any

from leadpipe.ops.reader import partitions, plain_consumer, read
from leadpipe.ops.settings import OpsSettings
from schemas.codec import decode_record
from schemas.envelope import Envelope
from schemas.errors import DecodeError
from schemas.lead_captured.v1 import LeadCaptured
from schemas.notification_outcome.v1 import NotificationOutcome
from schemas.notification_requested.v1 import NotificationRequested

TOPICS = ("lead.captured.v1", "notification.requested.v1", "notification.outcome.v1")
TRANSACTIONAL = "none needed: transactional"


@dataclass(frozen=True, slots=True)
class SentMessage:
    """One message that went to the person, and the basis it went on."""

    sent_at: datetime
    notification_id: str
    lead_id: str
    template: str
    channel: str
    basis: str
    basis_channels: tuple[str, ...]
    consent_given_at: datetime | None
    consent_capture_id: str | None
    #: from the capture the basis names: the text shown, when, on which form or show, a hash of the IP
    proof: dict[str, Any] | None

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for k in ("sent_at", "consent_given_at"):
            out[k] = out[k].isoformat() if out[k] else None
        out["basis_channels"] = list(self.basis_channels)
        return out


def _norm(channel: str, address: str) -> str:
    value = address.strip()
    if channel == "email":
        return value.lower()
    return "".join(ch for ch in value if ch.isdigit())


def _proof(capture: LeadCaptured) -> dict[str, Any] | None:
    c = capture.consent
    if c is None:
        return None
    return {
        "source_kind": capture.source_kind.value,
        "form_id": capture.context.form_id,
        "show_id": capture.context.show_id,
        "text_shown": c.text_shown,
        "text_version": c.text_version,
        "given_at": c.given_at.isoformat() if c.given_at else None,
        "channels": [ch.value for ch in c.channels],
        "ip_sha256": hashlib.sha256(c.ip.encode()).hexdigest()[:16] if c.ip else None,
    }


def messages_sent(
    events: Iterable[Envelope[Any]], *, email: str | None = None, phone: str | None = None, day: date | None = None
) -> list[SentMessage]:
    """Messages that went to ``email`` (or ``phone``) on ``day`` (UTC; None: any day), oldest first."""
    wanted = {("email", _norm("email", email))} if email else set()
    if phone:
        wanted |= {(ch, _norm(ch, phone)) for ch in ("sms", "phone")}
    captures: dict[str, LeadCaptured] = {}
    requests: dict[str, NotificationRequested] = {}
    sent: dict[str, NotificationOutcome] = {}
    for event in events:
        data = event.data
        if isinstance(data, LeadCaptured):
            captures[data.capture_id] = data
        elif isinstance(data, NotificationRequested) and data.audience == "lead":
            if (data.channel.value, _norm(data.channel.value, data.recipient.address)) in wanted:
                requests[data.notification_id] = data
        elif isinstance(data, NotificationOutcome) and data.status == "sent" and data.audience == "lead":
            sent.setdefault(data.notification_id, data)
    out = []
    for nid, outcome in sent.items():
        req = requests.get(nid)
        if req is None or (day is not None and outcome.completed_at.date() != day):
            continue
        basis = req.consent
        capture = captures.get(basis.capture_id) if basis and basis.capture_id else None
        out.append(
            SentMessage(
                sent_at=outcome.completed_at,
                notification_id=nid,
                lead_id=req.lead_id,
                template=req.template,
                channel=req.channel.value,
                basis=basis.basis if basis else TRANSACTIONAL,
                basis_channels=tuple(c.value for c in basis.channels) if basis else (),
                consent_given_at=basis.given_at if basis else None,
                consent_capture_id=basis.capture_id if basis else None,
                proof=_proof(capture) if capture else None,
            )
        )
    return sorted(out, key=lambda m: m.sent_at)


async def read_events(settings: OpsSettings, topics: Iterable[str] = TOPICS) -> list[Envelope[Any]]:
    """Every decodable event of ``topics`` from the beginning (records that do not decode are skipped)."""
    consumer = plain_consumer(settings)
    await consumer.start()
    try:
        tps = [tp for topic in topics for tp in await partitions(consumer, topic)]
        starts = await consumer.beginning_offsets(tps)
        events: list[Envelope[Any]] = []
        async for item in read(consumer, dict(starts)):
            try:
                events.append(decode_record(item.record))
            except DecodeError:
                continue
        return events
    finally:
        await consumer.stop()
