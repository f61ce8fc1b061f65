"""The receipt every consumer service publishes for an erasure request it honoured."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from schemas.envelope import Envelope, new_event
from schemas.person_erased.v1 import ErasedItem, PersonErased
from schemas.person_erasure_requested.v1 import PersonErasureRequested


def erasure_receipt(
    request: Envelope[Any],
    *,
    service: str,
    erased_at: datetime,
    items: Sequence[tuple[str, str, int]],
    remaining: Sequence[str],
    suppressed_hashes: Sequence[str] = (),
) -> Envelope[PersonErased]:
    """``person.erased`` for ``request`` (a ``person.erasure_requested`` event): ``items`` are
    (store, action, count); its id is deterministic per request and service (replays dedupe)."""
    req: PersonErasureRequested = request.data
    receipt = PersonErased(
        request_id=req.request_id,
        subject_hash=req.subject_hash,
        service=service,
        erased_at=erased_at,
        items=[ErasedItem(store=store, action=action, count=count) for store, action, count in items],
        remaining=list(remaining),
        suppressed_hashes=list(suppressed_hashes),
    )
    return new_event(receipt, source=f"/leadpipe/{service}", subject=req.subject_hash,
                     id=f"{req.request_id}/{service}", cause=request)  # fmt: skip
