"""Identity keys: one normalisation shared by every service, so a lead's events share a key.

The key is a hash of the normalised identifier, so the record key (and ``ce_subject``)
carries no personal data while staying stable for ordering.
"""

from __future__ import annotations

import hashlib
import hmac

import phonenumbers


def normalise_email(email: str) -> str:
    """Trim and lower-case. Provider-specific rules (dots, plus tags) are not safe in general."""
    return email.strip().lower()


def normalise_phone(phone: str, default_region: str | None = None) -> str | None:
    """E.164 form, or None when the number cannot be parsed as a valid number."""
    try:
        parsed = phonenumbers.parse(phone, default_region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(parsed):
        return None
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def normalise_badge(show_id: str, badge_id: str) -> str:
    return f"{show_id.strip().lower()}/{badge_id.strip().upper()}"


def _digest(kind: str, value: str) -> str:
    return f"{kind}_" + hashlib.blake2b(value.encode(), digest_size=12).hexdigest()


def identity_key(
    *,
    email: str | None = None,
    phone: str | None = None,
    show_id: str | None = None,
    badge_id: str | None = None,
    default_region: str | None = None,
) -> str:
    """The record key of a lead's events: normalised email, else phone, else show+badge.

    Raises ``ValueError`` naming what is missing when nothing identifies the person.
    """
    if email and email.strip():
        return _digest("em", normalise_email(email))
    if phone and phone.strip():
        e164 = normalise_phone(phone, default_region)
        return _digest("ph", e164 or phone.strip())
    if show_id and badge_id:
        return _digest("bd", normalise_badge(show_id, badge_id))
    raise ValueError("identity: need an email, a phone, or a show_id with a badge_id")


def keyed_hash(secret: str, kind: str, value: str) -> str:
    """HMAC-SHA256 (hex) of a normalised identifier under the pipeline's privacy secret.

    Unlike the record key (a plain hash), a list of these cannot be reversed by hashing a
    directory of addresses without the secret: this is what an erased person is remembered by.
    """
    return hmac.new(secret.encode(), f"{kind}:{value}".encode(), hashlib.sha256).hexdigest()


def erasure_hashes(secret: str, *, email: str | None = None, phone: str | None = None) -> list[str]:
    """The keyed hashes an erased person's identifiers are suppressed by (email first)."""
    out = []
    if email and email.strip():
        out.append(keyed_hash(secret, "email", normalise_email(email)))
    if phone and phone.strip():
        out.append(keyed_hash(secret, "phone", normalise_phone(phone) or phone.strip()))
    return out
