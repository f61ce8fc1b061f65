"""The checks every ingest route shares, as FastAPI dependencies: the service's dependencies,
API-key auth (bearer or ``X-API-Key``), the media type and the size-limited body.

A check that refuses raises ``Rejected``; the app answers it with a problem+json response
and counts it under its reason (``leadpipe_ingest_rejected_total``). Dependencies run in the
order a route declares them, which is the order a client learns its mistakes in.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from services.ingest.bootstrap import IngestDeps
from services.ingest.config import IngestSettings, hash_api_key
from services.ingest.domain.errors import FieldProblem
from services.ingest.web import BodyTooLarge, media_type, read_body


class Rejected(Exception):
    """A request refused with a problem+json response; ``reason`` labels the rejection metric."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str | None = None,
        *,
        reason: str | None = None,
        errors: list[FieldProblem] | None = None,
        headers: dict[str, str] | None = None,
    ):
        super().__init__(f"{status} {title}: {detail or ''}")
        self.status = status
        self.title = title
        self.detail = detail
        self.reason = reason
        self.errors = errors
        self.headers = headers


# Every dependency of the routes is ``async def`` though none of them awaits: FastAPI runs a plain
# ``def`` dependency in its thread pool, a thread hop (and GIL hand-over) per dependency per request.
# Four of them were 15 % of ingest's CPU under load (py-spy, issue #13);
# tests/unit/ingest/test_async_dependencies.py keeps it so.
async def get_deps(request: Request) -> IngestDeps:
    deps: IngestDeps = request.app.state.deps
    return deps


Deps = Annotated[IngestDeps, Depends(get_deps)]


def client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


class MediaType:
    """Refuses (415) a body whose Content-Type is not one of ``allowed``; gives the one sent."""

    def __init__(self, *allowed: str, hint: str, accept_post: str | None = None):
        self.allowed = allowed
        self.hint = hint
        self.headers = {"Accept-Post": accept_post} if accept_post else None

    async def __call__(self, request: Request) -> str:
        sent = media_type(request)
        if sent not in self.allowed:
            raise Rejected(415, "Unsupported media type", self.hint, reason="media_type", headers=self.headers)
        return sent


#: The JSON routes' media-type check (scans, webhooks, erasure requests).
json_only = MediaType("application/json", hint="send application/json")


class LimitedBody:
    """The body, refusing (413) more than the route's limit, declared or actually sent."""

    def __init__(self, limit: Callable[[IngestSettings], int]):
        self.limit = limit

    async def __call__(self, request: Request, deps: Deps) -> bytes:
        try:
            return await read_body(request, self.limit(deps.settings))
        except BodyTooLarge as exc:
            raise Rejected(413, "Request too large", str(exc), reason="too_large") from exc


scanner_bearer = HTTPBearer(
    scheme_name="scannerKey", description="A scanner app's API key: `Authorization: Bearer KEY`.", auto_error=False
)
scanner_header = APIKeyHeader(
    name="X-API-Key", scheme_name="scannerApiKey", description="The same key as `X-API-Key: KEY`.", auto_error=False
)
privacy_bearer = HTTPBearer(
    scheme_name="privacyKey",
    description="A privacy caller's key (a CRM, a DSR tool; not a scanner key): `Authorization: Bearer KEY`.",
    auto_error=False,
)


def _caller(keys: dict[str, str], key: str | None, *, realm: str, what: str) -> str:
    """The caller's name for a valid key (compared by its stored hash only); else 401."""
    key = (key or "").strip()
    if key:
        digest = hash_api_key(key)
        for name, stored in keys.items():
            if hmac.compare_digest(digest, stored):
                return name
    raise Rejected(
        401,
        "Unauthorized",
        f"a valid {what} is required (Authorization: Bearer KEY)",
        reason="unauthorized",
        headers={"WWW-Authenticate": f'Bearer realm="{realm}"'},
    )


async def scanner(
    deps: Deps,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(scanner_bearer)],
    api_key: Annotated[str | None, Depends(scanner_header)],
) -> str:
    """The scanner (by its key's name) posting a batch."""
    key = bearer.credentials if bearer is not None else api_key
    return _caller(deps.settings.ingest_api_keys, key, realm="leadpipe-scans", what="API key")


async def privacy_caller(
    deps: Deps, bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(privacy_bearer)]
) -> str:
    """The privacy caller (by its key's name) asking for an erasure."""
    key = bearer.credentials if bearer is not None else None
    return _caller(deps.settings.ingest_privacy_api_keys, key, realm="leadpipe-privacy", what="privacy API key")
