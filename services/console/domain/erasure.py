"""What the console keeps of an erased person's leads, and which events are theirs.

An erased lead keeps its row and its timeline, stripped to what the manager's funnel counts and
the timeline's shape need (stage, source, grade, score, week, rep, timings): every field that
names or describes the person (name, email, phone, company, country, identities, free-text notes,
reasons, error texts, message variables) goes. The same ``redact`` is applied to an erased lead's
stored events when the request arrives and to any of its events projected afterwards (a late
event, a rebuild replaying the topics), so the row folds the same either way.

Whose events they are (as scoring decides, ``services/scoring/domain/erasure.py``):
- every event of a lead the request names, or whose email is the person's, or whose phone is
  the person's when the lead holds no email of its own (a colleague who gave the same
  switchboard number keeps their lead);
- a capture or engagement (keyed by identity, not lead) whose email is the person's, or whose
  phone is when it carries no email, **up to the time of the request**: a capture afterwards
  is the person coming back, a new lead the console shows.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from schemas.identity import keyed_hash, normalise_email, normalise_phone
from services.console.domain.facts import describe
from services.console.domain.projection import Fact

#: Per event type, the payload fields an erased lead's event keeps (nested: the kept sub-fields).
KEPT: Mapping[str, Mapping[str, Any]] = {
    "lead.captured": {"capture_id": True, "source_kind": True, "captured_at": True},
    "lead.scored": {
        "lead_id": True, "scored_at": True, "model_version": True, "fit_score": True, "engagement_score": True,
        "score": True, "grade": True, "core_account": True,
        "capture": {"source_kind": True, "first_captured_at": True, "last_captured_at": True},
        "trigger": {"event_id": True, "event_type": True, "engagement_kind": True},
    },
    "lead.stage_changed": {"lead_id": True, "from_stage": True, "to_stage": True, "changed_at": True,
                           "next_touch_at": True},
    "lead.assigned": {"assignment_id": True, "lead_id": True, "rep_id": True, "rep_name": True, "team": True,
                      "rule": True, "assigned_at": True, "accept_by": True},
    "assignment.response": {"assignment_id": True, "lead_id": True, "rep_id": True, "response": True,
                            "responded_at": True},
    "notification.requested": {"notification_id": True, "lead_id": True, "audience": True, "channel": True,
                               "template": True, "requested_at": True, "touch": {"step": True},
                               "assignment_id": True, "next_touch_at": True},
    "notification.outcome": {"notification_id": True, "lead_id": True, "status": True, "channel": True,
                             "audience": True, "attempts": True, "completed_at": True, "template": True,
                             "assignment_id": True},
    "lead.engagement": {"engagement_id": True, "kind": True, "occurred_at": True, "channel": True,
                        "provider": True},
    "lead.outcome_logged": {"outcome_id": True, "lead_id": True, "rep_id": True, "outcome": True,
                            "logged_at": True},
}  # fmt: skip

#: Marks a redacted payload (the timeline shows it; redacting twice changes nothing).
ERASED = "erased"


@dataclass(frozen=True, slots=True)
class Erasure:
    """One honoured request as the console remembers it: no address, only keyed hashes."""

    request_id: str
    requested_at: datetime
    identifier_hashes: frozenset[str]
    lead_ids: frozenset[str]


def _keep(data: Mapping[str, Any], kept: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, sub in kept.items():
        if key not in data or data[key] is None:
            continue
        value = data[key]
        if isinstance(sub, Mapping):
            if isinstance(value, Mapping):
                out[key] = _keep(value, sub)
        elif not isinstance(value, (Mapping, list)):
            out[key] = value
    return out


def redact(fact: Fact) -> Fact:
    """The fact with only the fields its type keeps, and a timeline line drawn from those."""
    data = _keep(fact.data, KEPT.get(fact.type, {}))
    data[ERASED] = True
    return replace(fact, data=data, summary=describe(fact.type, data))


def identity_hashes(secret: str, fact: Fact) -> frozenset[str]:
    """Keyed hashes of the email, and of the phone when no email is given, that the event names
    the person by (a capture's or engagement's identity, a score's profile)."""
    person = fact.data.get("profile") if fact.type == "lead.scored" else fact.data.get("identity")
    if not isinstance(person, Mapping):
        return frozenset()
    email, phone = person.get("email"), person.get("phone")
    if isinstance(email, str) and email.strip():
        return frozenset({keyed_hash(secret, "email", normalise_email(email))})
    if isinstance(phone, str) and phone.strip():
        return frozenset({keyed_hash(secret, "phone", normalise_phone(phone) or phone.strip())})
    return frozenset()


def erasure_of(fact: Fact, hashes: Collection[str], erasures: Iterable[Erasure]) -> Erasure | None:
    """The erasure an event being projected falls under, if any (``hashes``: its
    ``identity_hashes``)."""
    for erasure in erasures:
        if fact.lead_id is not None and fact.lead_id in erasure.lead_ids:
            return erasure
        if fact.time <= erasure.requested_at and not erasure.identifier_hashes.isdisjoint(hashes):
            return erasure
    return None


def names_person(email: str | None, phone: str | None, *, person_email: str | None, person_phone: str | None) -> bool:
    """Whether a lead row or an identity (``email``, ``phone``) is the requested person's."""
    if person_email and email and normalise_email(email) == normalise_email(person_email):
        return True
    if person_phone and phone and not email:
        return (normalise_phone(phone) or phone.strip()) == (normalise_phone(person_phone) or person_phone.strip())
    return False
