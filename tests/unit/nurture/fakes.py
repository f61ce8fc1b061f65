"""In-memory fakes of nurture's ports (``services/nurture/ports.py``), behaving as the Redis
store does for the handler: compare-and-set on the state's version, due times claimed with a
lease, one rep per (lead, attempt) and never beyond a rep's capacity."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from datetime import datetime

from services.nurture.domain.routing import Load, QueueEntry
from services.nurture.domain.state import LeadState


class FakeNurtureStore:
    def __init__(self) -> None:
        self.leads: dict[str, LeadState] = {}
        self.due: dict[str, float] = {}
        self.queued: dict[str, QueueEntry] = {}
        self.holds: dict[tuple[str, int], str] = {}
        self.used: dict[tuple[str, str], int] = {}
        self.owners: dict[str, str] = {}
        self.stages: dict[str, int] = {}
        self.built = True
        #: routing's reads of the reps' loads and domains' owners (``routing_view``): one per round trip
        self.views_read = 0

    async def load(self, lead_id: str) -> LeadState | None:
        state = self.leads.get(lead_id)
        return None if state is None else state.model_copy(deep=True)

    async def load_many_checked(self, lead_ids: Iterable[str]) -> tuple[dict[str, LeadState | None], bool]:
        return {lead_id: await self.load(lead_id) for lead_id in lead_ids}, self.built

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
        current = self.leads.get(state.lead_id)
        if (current.version if current else 0) != expected_version:
            return False
        if owner_claim is not None:
            self.owners.setdefault(*owner_claim)
        for old, new in moves:
            if old is not None:
                self.stages[old] = self.stages.get(old, 0) - 1
            self.stages[new] = self.stages.get(new, 0) + 1
        self.leads[state.lead_id] = state.model_copy(deep=True)
        await self.set_due(state.lead_id, due)
        if queued is None:
            self.queued.pop(state.lead_id, None)
        else:
            self.queued[state.lead_id] = queued
        return True

    async def forget(self, lead_id: str) -> None:
        self.due.pop(lead_id, None)
        self.queued.pop(lead_id, None)

    async def states(self, count: int = 500) -> AsyncIterator[list[LeadState]]:
        yield [s.model_copy(deep=True) for s in self.leads.values()]

    async def erase(self, lead_id: str) -> int:
        keys = int(self.leads.pop(lead_id, None) is not None)
        await self.forget(lead_id)
        return keys

    async def claim_due(self, now: float, lease_s: float, limit: int) -> list[str]:
        ids = sorted((t, lead) for lead, t in self.due.items() if t <= now)[:limit]
        for _, lead_id in ids:
            self.due[lead_id] = now + lease_s
        return [lead_id for _, lead_id in ids]

    async def set_due(self, lead_id: str, due: datetime | None) -> None:
        if due is None:
            self.due.pop(lead_id, None)
        else:
            self.due[lead_id] = due.timestamp()

    async def next_due(self) -> float | None:
        return min(self.due.values(), default=None)

    async def due_counts(self, now: float, overdue_after_s: float = 60.0) -> tuple[int, int]:
        return sum(t <= now for t in self.due.values()), sum(t <= now - overdue_after_s for t in self.due.values())

    async def queue(self) -> list[QueueEntry]:
        return list(self.queued.values())

    async def reserve(
        self, lead_id: str, attempt: int, rep_id: str, day: str, capacity: int, *, count: bool, ttl_s: int = 30 * 86400
    ) -> str | None:
        held = self.holds.get((lead_id, attempt))
        if held is not None:
            return held
        if count:
            if self.used.get((rep_id, day), 0) >= capacity:
                return None
            self.used[(rep_id, day)] = self.used.get((rep_id, day), 0) + 1
        self.holds[(lead_id, attempt)] = rep_id
        return rep_id

    async def release(self, rep_id: str, day: str) -> None:
        if self.used.get((rep_id, day), 0) > 0:
            self.used[(rep_id, day)] -= 1

    async def loads(self, reps: Iterable[tuple[str, str]]) -> dict[str, Load]:
        return {rep: Load(self.used.get((rep, day), 0)) for rep, day in reps}

    async def routing_view(
        self, reps: Iterable[tuple[str, str]], domains: Iterable[str]
    ) -> tuple[dict[str, Load], dict[str, str | None]]:
        self.views_read += 1
        return await self.loads(reps), {d: self.owners.get(d) for d in domains}

    async def stage_counts(self) -> dict[str, int]:
        return dict(self.stages)


class FakeStateLog:
    """The state topic: appended states (``None`` for a tombstone); ``acked`` after ``flush``."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, LeadState | None]] = []
        self.acked = 0

    async def append(self, state: LeadState) -> None:
        self.sent.append((state.lead_id, state.model_copy(deep=True)))

    async def tombstone(self, lead_id: str) -> None:
        self.sent.append((lead_id, None))

    async def flush(self) -> None:
        self.acked = len(self.sent)
