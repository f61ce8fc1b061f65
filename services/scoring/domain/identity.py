"""Identity resolution: which person a capture is, as B2B people are known.

Identifiers are normalised strings (``email:dana@example.com``, ``phone:+14155550100``,
``badge:show-1/B-77``, ``ext:crm-9``).

**Strong identifiers name a person**: an email address, a badge at a given show, an id in
another system. A capture whose strong identifiers point at known leads is that person; when
they point at several leads, those leads are one person and merge into the one seen first.

**A phone is weak**: a switchboard, a reception desk or a booth's shared scanner serves many
people. A phone links a capture to a known lead only when

- the number is known for exactly one lead (a number already shared by two leads links no
  one new), and
- nothing strong contradicts it: the capture (with whatever its strong identifiers already
  found) and the phone's lead do not both carry an email with no email in common, a badge at
  the same show with no badge in common, or an external id with none in common.

Examples, in the terms sales uses:

- *Reception number*: Ana (ana@acme.com) and Ben (ben@acme.com) both type Acme's switchboard
  +44 20 7946 0000. Two different emails: two leads, each with its own ``lead.scored``; the
  number is now known as shared and links nobody after that.
- *Shared booth scanner*: visitors leave the booth's own phone on two scans with badges B-1 and
  B-2 at one show: two badges at the same show are two people.
- *Personal mobile on two forms*: Dana fills a form with dana@acme.com and her mobile, then
  another one with the same email and a new mobile: one lead (the email decides). A badge scan
  at a show with no email and Dana's mobile links to her (nothing contradicts it).

Merges are events (``lead.scored`` names the leads folded in, ``merged_lead_ids``) and can be
undone: ``leadpipe scoring split`` moves a capture and the captures sharing its strong
identifiers back out into a lead of their own (``domain/lead.py: split``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache

from schemas.identity import normalise_badge, normalise_email, normalise_phone
from services.scoring.domain.errors import IdentityError

# Parsing and validating a number is the costliest step of an event; a lead's number recurs
# on each of its events, and the function is pure, so a bounded memo is safe.
_e164 = lru_cache(maxsize=16384)(normalise_phone)

#: How many leads a phone link remembers: past two it is shared (links no one) either way.
PHONE_LINK_LIMIT = 8


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

    @classmethod
    def from_strings(cls, identifiers: Iterable[str]) -> Identifiers:
        """The inverse of ``strings`` (the first of each kind wins)."""
        found: dict[str, str] = {}
        for identifier in identifiers:
            kind, _, value = identifier.partition(":")
            found.setdefault(kind, value)
        return cls(found.get("email"), found.get("phone"), found.get("badge"), found.get("ext"))


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


def is_strong(identifier: str) -> bool:
    """Email, badge at a show and external id name a person; a phone does not."""
    return not identifier.startswith("phone:")


def _strong_groups(identifiers: Iterable[str]) -> dict[str, set[str]]:
    # A person has one badge per show: badges only compare within one show.
    groups: dict[str, set[str]] = {}
    for identifier in identifiers:
        kind, _, value = identifier.partition(":")
        if kind == "badge":
            kind = "badge@" + value.rpartition("/")[0]
        elif kind not in ("email", "ext"):
            continue
        groups.setdefault(kind, set()).add(identifier)
    return groups


def contradicts(a: Iterable[str], b: Iterable[str]) -> bool:
    """Two sets of identifiers name different people: both carry an email (or a badge at the same
    show, or an external id) and they have none of that kind in common."""
    ga, gb = _strong_groups(a), _strong_groups(b)
    return any(not (ga[kind] & gb[kind]) for kind in ga.keys() & gb.keys())


@dataclass(frozen=True, slots=True)
class KnownLead:
    """What resolution needs to know of a lead the links point at."""

    created_at: datetime
    identifiers: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Resolution:
    """Which lead the identifiers belong to, and which other known leads fold into it."""

    lead_id: str
    is_new: bool
    merged_lead_ids: tuple[str, ...] = ()


def resolve(
    identifiers: list[str],
    links: Mapping[str, tuple[str, ...]],
    known: Mapping[str, KnownLead],
    *,
    salt: str = "",
) -> Resolution:
    """Resolve a capture's identifiers against known links (identifier -> lead ids; a strong
    identifier has one lead, a phone the leads that gave it) under the rules of this module.

    ``known`` holds the leads the links point at; a linked lead missing from it (merged away
    meanwhile) is ignored. When several leads are linked the oldest survives (ties: smallest id)
    and the others merge into it. A new lead's id derives from its strongest identifier, or,
    when that is a phone some lead already gave, from the phone and ``salt`` (the event id: a
    replay makes the same id), so it never takes the id of a lead made from that number.
    """
    if not identifiers:
        raise IdentityError("identity: nothing to resolve", field="identity")
    linked: list[str] = []
    person = [i for i in identifiers if is_strong(i)]
    for identifier in person:
        for lead_id in links.get(identifier, ()):
            if lead_id in known and lead_id not in linked:
                linked.append(lead_id)
                person.extend(i for i in known[lead_id].identifiers if is_strong(i))
    for identifier in identifiers:
        if is_strong(identifier):
            continue
        leads = set(links.get(identifier, ()))
        if len(leads) != 1:
            continue  # unknown, or a shared number (reception, switchboard): it links no one
        (lead_id,) = leads
        if lead_id in linked or lead_id not in known or contradicts(person, known[lead_id].identifiers):
            continue
        linked.append(lead_id)
        person.extend(i for i in known[lead_id].identifiers if is_strong(i))
    if not linked:
        first = identifiers[0]
        taken = not is_strong(first) and bool(links.get(first))
        return Resolution(new_lead_id(f"{first}#{salt}" if taken else first), is_new=True)
    survivor = min(linked, key=lambda lid: (known[lid].created_at.replace(tzinfo=None), lid))
    return Resolution(survivor, is_new=False, merged_lead_ids=tuple(sorted(lid for lid in linked if lid != survivor)))


def relink_phone(leads: tuple[str, ...], lead_id: str, merged: Iterable[str] = ()) -> tuple[str, ...]:
    """A phone link after ``lead_id`` gave the number (and ``merged`` leads were folded into it)."""
    gone = set(merged)
    out = [lid for lid in leads if lid not in gone and lid != lead_id]
    out.append(lead_id)
    return tuple(out[-PHONE_LINK_LIMIT:])
