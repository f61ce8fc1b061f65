"""Signed, expiring tokens carried in links that leave the pipeline (the contract between the
service that makes a link and the one that serves it).

- assignment tokens: nurture puts them in rep alerts; ingest serves
  ``GET /v1/assignments/{token}/accept|decline``.
- unsubscribe tokens: the notifier puts them in lead-facing messages; ingest serves
  ``GET|POST /v1/unsubscribe/{token}`` (RFC 8058 one-click).

A token is ``base64url(json claims) + "." + base64url(HMAC-SHA256(secret, claims))``; claims
carry ``kind`` and ``exp`` (unix seconds). The secret is ``LEADPIPE_LINK_SECRET``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from typing import Any

import orjson

from schemas.errors import SchemaError


class InvalidToken(SchemaError):
    """A link token is malformed, forged, of another kind, or expired (``reason`` says which)."""

    def __init__(self, reason: str):
        super().__init__(f"invalid link token: {reason}")
        self.reason = reason


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign(secret: str, kind: str, claims: dict[str, Any], ttl_s: float, *, now: float | None = None) -> str:
    body = orjson.dumps({"kind": kind, "exp": int((now or time.time()) + ttl_s), **claims}, option=orjson.OPT_SORT_KEYS)
    mac = hmac.new(secret.encode(), body, hashlib.sha256).digest()
    return f"{_b64(body)}.{_b64(mac)}"


def verify(secret: str, token: str, kind: str, *, now: float | None = None) -> dict[str, Any]:
    """The claims of a valid token; raises ``InvalidToken`` otherwise."""
    try:
        body_part, mac_part = token.split(".", 1)
        body, mac = _unb64(body_part), _unb64(mac_part)
    except (ValueError, TypeError) as exc:
        raise InvalidToken("malformed") from exc
    expected = hmac.new(secret.encode(), body, hashlib.sha256).digest()
    if not hmac.compare_digest(mac, expected):
        raise InvalidToken("bad signature")
    try:
        claims: dict[str, Any] = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidToken("malformed") from exc
    if claims.get("kind") != kind:
        raise InvalidToken(f"not a {kind} token")
    if int(claims.get("exp", 0)) < (now or time.time()):
        raise InvalidToken("expired")
    return claims


def assignment_token(secret: str, *, assignment_id: str, lead_id: str, rep_id: str, ttl_s: float = 7 * 86400) -> str:
    return sign(secret, "assignment", {"aid": assignment_id, "lid": lead_id, "rid": rep_id}, ttl_s)


def unsubscribe_token(secret: str, *, lead_id: str, channel: str, address: str, ttl_s: float = 365 * 86400) -> str:
    return sign(secret, "unsubscribe", {"lid": lead_id, "ch": channel, "addr": address}, ttl_s)
