"""An erasure request as a CRM or a DSR tool sends it (``POST /v1/privacy/erasure``), and which
spooled records belong to the person.

Rules:
- the body names the person by ``email``, ``phone`` and/or ``lead_ids``; at least one;
- an email must look like one, a phone must have at least 3 digits; every bad field is reported;
- the spooled records of the person are those keyed by their email, or by their phone (a
  capture with no email is keyed by its phone; one with an email is someone's else's record
  even when it carries the same switchboard number).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from schemas.identity import identity_key
from services.ingest.domain.errors import FieldProblem, InvalidInput
from services.ingest.domain.text import NONBLANK, WS, strip

MAX_LEAD_IDS = 100
#: Checked on the value as sent (the published contract states the same patterns).
EMAIL_PATTERN = rf"^[{WS}]*[^@{WS}][\s\S]*@[\s\S]*[^@{WS}][{WS}]*$"
#: At least three digits (the request event keeps phones of 3 characters or more).
PHONE_PATTERN = r"[0-9][\s\S]*[0-9][\s\S]*[0-9]"


@dataclass(frozen=True, slots=True)
class ErasureInput:
    email: str | None
    phone: str | None
    lead_ids: list[str]


def _text(body: dict[str, Any], name: str, problems: list[FieldProblem], limit: int) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not re.search(NONBLANK, value):
        problems.append(FieldProblem(name, "must be a non-empty string"))
        return None
    if len(value) > limit:
        problems.append(FieldProblem(name, f"longer than {limit} characters"))
        return None
    return strip(value)


def parse_erasure(body: Any) -> ErasureInput:
    if not isinstance(body, dict):
        raise InvalidInput([FieldProblem("body", "must be a JSON object")])
    problems: list[FieldProblem] = []
    email = _text(body, "email", problems, 320)
    if email is not None and not re.search(EMAIL_PATTERN, body["email"]):
        problems.append(FieldProblem("email", "is not an email address"))
    phone = _text(body, "phone", problems, 40)
    if phone is not None and not re.search(PHONE_PATTERN, body["phone"]):
        problems.append(FieldProblem("phone", "needs at least 3 digits"))
    raw_ids = body.get("lead_ids", [])
    lead_ids: list[str] = []
    if not isinstance(raw_ids, list) or len(raw_ids) > MAX_LEAD_IDS:
        problems.append(FieldProblem("lead_ids", f"must be a list of at most {MAX_LEAD_IDS} lead ids"))
    else:
        for i, lid in enumerate(raw_ids):
            if not isinstance(lid, str) or not re.search(NONBLANK, lid) or len(lid) > 200:
                problems.append(FieldProblem(f"lead_ids.{i}", "must be a non-empty string of at most 200 characters"))
            else:
                lead_ids.append(strip(lid))
    unknown = sorted(set(body) - {"email", "phone", "lead_ids"})
    for name in unknown:
        problems.append(FieldProblem(name, "unknown field (expected email, phone, lead_ids)"))
    if not problems and not (email or phone or lead_ids):
        problems.append(FieldProblem("email", "give the person's email, phone or lead_ids"))
    if problems:
        raise InvalidInput(problems)
    return ErasureInput(email, phone, lead_ids)


def spool_keys(email: str | None, phone: str | None) -> list[str]:
    """The record keys the person's own captures and engagements are published under."""
    keys = []
    if email:
        keys.append(identity_key(email=email))
    if phone:
        keys.append(identity_key(phone=phone))
    return keys
