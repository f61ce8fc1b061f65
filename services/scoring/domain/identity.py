"""Identity resolution: the identifiers of one person, linked to one stable lead id.

Identifiers are normalised strings (``email:dana@example.com``, ``phone:+14155550100``,
``badge:show-1/B-77``, ``ext:crm-9``). A new capture whose identifiers point at two or
more known leads merges them into the one seen first.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache

from schemas.identity import normalise_badge, normalise_email, normalise_phone
from services.scoring.domain.errors import IdentityError

# Parsing and validating a number is the costliest step of an event; a lead's number recurs
# on each of its events, and the function is pure, so a bounded memo is safe.
_e164 = lru_cache(maxsize=16384)(normalise_phone)


@dataclass(frozen=True, slots=True)
class Identifiers:
    """A person's normalised identifiers, strongest first."""

    email: str | None = None
    phone: str | None = None
    badge: str | None = None
    external_id: str | None = None
    invalid_phone: bool = False

    def strings(self) -> list[str]:
        out = []
        if self.email:
            out.append(f"email:{self.email}")
        if self.phone:
            out.append(f"phone:{self.phone}")
        if self.badge:
            out.append(f"badge:{self.badge}")
        if self.external_id:
            out.append(f"ext:{self.external_id}")
        return out


def normalise_identifiers(
    *,
    email: str | None = None,
    phone: str | None = None,
    show_id: str | None = None,
    badge_id: str | None = None,
    external_id: str | None = None,
    country: str | None = None,
) -> Identifiers:
    """Normalise what an event carries; ``country`` (alpha-2) reads local phone numbers.

    Raises ``IdentityError`` when nothing usable is left (e.g. only an unparseable phone).
    """
    norm_email = normalise_email(email) if email and "@" in email else None
    norm_phone = _e164(phone, country) if phone and phone.strip() else None
    badge = normalise_badge(show_id, badge_id) if show_id and badge_id else None
    ext = external_id.strip() if external_id and external_id.strip() else None
    ids = Identifiers(
        norm_email, norm_phone, badge, ext, invalid_phone=bool(phone and phone.strip() and not norm_phone)
    )
    if not (norm_email or norm_phone or badge):
        problem = "email is not an address" if email else "phone is not a valid number" if phone else "missing"
        raise IdentityError(f"identity: no usable email, phone or show+badge ({problem})", field="identity")
    return ids


def new_lead_id(primary_identifier: str) -> str:
    """A stable lead id derived from the first identifier (replays rebuild the same ids)."""
    return "ld_" + hashlib.blake2b(primary_identifier.encode(), digest_size=10).hexdigest()


@dataclass(frozen=True, slots=True)
class Resolution:
    """Which lead the identifiers belong to, and which other known leads fold into it."""

    lead_id: str
    is_new: bool
    merged_lead_ids: tuple[str, ...] = ()


def resolve(identifiers: list[str], links: Mapping[str, str], created: Mapping[str, datetime]) -> Resolution:
    """Resolve identifiers against known links (identifier -> lead id).

    ``created`` gives when each known lead was first seen; when identifiers point at several
    leads, the oldest survives (ties: smallest id) and the others are merged into it.
    """
    if not identifiers:
        raise IdentityError("identity: nothing to resolve", field="identity")
    known = sorted({links[i] for i in identifiers if i in links})
    if not known:
        return Resolution(new_lead_id(identifiers[0]), is_new=True)
    if len(known) == 1:
        return Resolution(known[0], is_new=False)
    far_future = datetime.max.replace(tzinfo=None)
    survivor = min(known, key=lambda lid: (created[lid].replace(tzinfo=None) if lid in created else far_future, lid))
    return Resolution(survivor, is_new=False, merged_lead_ids=tuple(lid for lid in known if lid != survivor))
