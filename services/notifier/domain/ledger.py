"""What the idempotency ledger says about one notification id (the handler decides on these)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from schemas.codec import Record

TERMINAL = ("sent", "failed", "suppressed", "expired")


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    state: str | None
    attempts: int
    outcome: Record | None
    published: bool
    #: False when the keyspace has no built marker (a guarded ledger after a wipe).
    built: bool = True

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL


@dataclass(frozen=True, slots=True)
class Claim:
    """``status`` is ``claimed`` (go ahead and send), ``busy`` (another worker holds a live
    lease until ``lease_until``), ``limited`` (the recipient's rate limit is reached until
    ``limited_until``; nothing was claimed) or a terminal state. ``previous == "sending"``
    means an earlier delivery died mid-send: the one case where the provider may already have it."""

    status: str
    attempts: int
    previous: str = ""
    lease_until: float = 0.0
    limited_until: float = 0.0


@dataclass(frozen=True, slots=True)
class RequestState:
    """What a request is decided on, read together: its ledger entry and, for a message to a
    lead, the address's suppression reason and erasure time (None: not suppressed / erased)."""

    entry: LedgerEntry
    suppressed: str | None = None
    erased_at: datetime | None = None
