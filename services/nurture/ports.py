"""The nurture handler's ports: the lead-state store (with due times, the overflow queue and
sales capacity) and the state topic. ``adapters/redis_store.py`` and ``adapters/state_log.py``
implement them; ``tests/unit/nurture/fakes.py`` has in-memory fakes. Publishing goes through
the runtime's ``leadpipe.runtime.publish.Publisher``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from datetime import datetime
from typing import Protocol

from services.nurture.domain.routing import Load, QueueEntry
from services.nurture.domain.state import LeadState


class NurtureStore(Protocol):
    """Lead states (compare-and-set on their version), due times, the overflow queue, capacity."""

    async def load(self, lead_id: str) -> LeadState | None: ...

    async def load_many_checked(self, lead_ids: Iterable[str]) -> tuple[dict[str, LeadState | None], bool]:
        """Several states and whether the keyspace is built, in one round trip."""

    async def save(
        self,
        state: LeadState,
        expected_version: int,
        due: datetime | None,
        queued: QueueEntry | None = None,
        *,
        owner_claim: tuple[str, str] | None = None,
        moves: Iterable[tuple[str | None, str]] = (),
    ) -> bool:
        """Writes ``state`` if its stored version is still ``expected_version``; False if not.
        Only with a write, atomically: claims the domain's owner (``owner_claim``, kept if one is
        there) and counts the stage ``moves``."""

    async def forget(self, lead_id: str) -> None:
        """Drops the due time and queue place of a lead that no longer exists."""

    def states(self, count: int = 500) -> AsyncIterator[list[LeadState]]:
        """Every lead state, a chunk at a time."""

    async def erase(self, lead_id: str) -> int:
        """Deletes the lead's state, due time, queue place and reservations; returns keys deleted."""

    async def claim_due(self, now: float, lease_s: float, limit: int) -> list[str]:
        """Takes due leads, pushing them a lease into the future (claimed again if not saved)."""

    async def set_due(self, lead_id: str, due: datetime | None) -> None: ...

    async def next_due(self) -> float | None:
        """The earliest due time (epoch seconds, claimed leads' leases included); None: nothing due."""

    async def due_counts(self, now: float, overdue_after_s: float = 60.0) -> tuple[int, int]: ...
    async def queue(self) -> list[QueueEntry]: ...

    async def reserve(
        self, lead_id: str, attempt: int, rep_id: str, day: str, capacity: int, *, count: bool, ttl_s: int = 30 * 86400
    ) -> str | None:
        """The rep holding this (lead, attempt): ``rep_id`` if reserved now, another rep if one was
        before, None if ``rep_id`` is at capacity."""

    async def release(self, rep_id: str, day: str) -> None: ...
    async def loads(self, reps: Iterable[tuple[str, str]]) -> dict[str, Load]: ...

    async def routing_view(
        self, reps: Iterable[tuple[str, str]], domains: Iterable[str]
    ) -> tuple[dict[str, Load], dict[str, str | None]]:
        """``loads`` and each company domain's owner rep (None: no owner), in one round trip."""

    async def stage_counts(self) -> dict[str, int]: ...


class StateAppender(Protocol):
    """The compacted state topic an empty Redis is rebuilt from."""

    async def append(self, state: LeadState) -> None:
        """Sends the state; it may be acknowledged only by the next ``flush``."""

    async def flush(self) -> None:
        """Returns once every state appended so far is acknowledged."""

    async def tombstone(self, lead_id: str) -> None:
        """Sends a null state for the lead (erased); acknowledged by the next ``flush``."""
