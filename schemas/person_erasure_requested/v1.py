"""``person.erasure_requested`` version 1.

The request has to name the person so each service can find what it holds: it carries the
identifiers in clear. Its topic keeps records for one day only (see ``schemas.topics``), and the
receipts (``person.erased``) carry nothing but the subject's keyed hash.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import Field, model_validator

from schemas.base import Payload, UtcDatetime
from schemas.identity import erasure_hashes, keyed_hash
from schemas.pii import PERSONAL

Text = Annotated[str, Field(max_length=500)]


class PersonErasureRequested(Payload):
    """Erase everything held about the person with these identifiers (any of them matches)."""

    EVENT_TYPE = "person.erasure_requested"
    VERSION = 1

    request_id: Annotated[str, Field(min_length=1, max_length=200)]
    requested_at: UtcDatetime
    #: who asked: ``cli:<user>`` or ``api:<key name>``
    requested_by: Text
    #: HMAC-SHA256 (hex) of the person's first identifier under the pipeline's privacy secret
    subject_hash: Annotated[str, Field(min_length=16, max_length=128)]
    email: Annotated[Annotated[str, Field(min_length=3, max_length=320)] | None, PERSONAL] = None
    phone: Annotated[Annotated[str, Field(min_length=3, max_length=40)] | None, PERSONAL] = None
    lead_ids: list[Annotated[str, Field(min_length=1, max_length=200)]] = Field(default_factory=list, max_length=100)
    #: keyed hashes of every identifier (email, phone), for the suppression list
    identifier_hashes: list[Annotated[str, Field(min_length=16, max_length=128)]] = Field(
        default_factory=list, max_length=10
    )

    @model_validator(mode="after")
    def _names_someone(self) -> PersonErasureRequested:
        if not (self.email or self.phone or self.lead_ids):
            raise ValueError("email, phone or lead_ids: an erasure request must name the person")
        return self


def erasure_request(
    secret: str,
    *,
    request_id: str,
    requested_at: datetime,
    requested_by: str,
    email: str | None = None,
    phone: str | None = None,
    lead_ids: list[str] | None = None,
) -> PersonErasureRequested:
    """The request for a person, with the keyed hashes of their identifiers filled in (the subject
    hash is the email's, else the phone's, else the first lead id's). Raises ``ValidationError``
    naming the field when nothing names the person."""
    hashes = erasure_hashes(secret, email=email, phone=phone)
    ids = list(lead_ids or [])
    subject = hashes[0] if hashes else keyed_hash(secret, "lead", ids[0]) if ids else ""
    return PersonErasureRequested(
        request_id=request_id,
        requested_at=requested_at,
        requested_by=requested_by,
        subject_hash=subject or "0" * 64,
        email=email.strip() if email and email.strip() else None,
        phone=phone.strip() if phone and phone.strip() else None,
        lead_ids=ids,
        identifier_hashes=hashes,
    )
