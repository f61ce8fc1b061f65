"""Whose nurture state an erasure request names: its lead ids, or a lead whose email or phone
(as nurture last heard them from scoring) is one the person gave."""

from __future__ import annotations

from collections.abc import Collection

from schemas.identity import normalise_email, normalise_phone
from services.nurture.domain.state import LeadState


def is_subject_of_erasure(state: LeadState, *, email: str | None, phone: str | None, lead_ids: Collection[str]) -> bool:
    if state.lead_id in lead_ids:
        return True
    view = state.lead
    if email and view.email and normalise_email(view.email) == normalise_email(email):
        return True
    if phone and view.phone:
        return (normalise_phone(view.phone) or view.phone.strip()) == (normalise_phone(phone) or phone.strip())
    return False
