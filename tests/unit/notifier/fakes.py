"""In-memory fakes of the notifier's ports (``services/notifier/ports.py``), behaving as the
Redis adapters do for the handler (the ledger's transitions follow ``redis_ledger``'s scripts)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime

from schemas.codec import Record
from services.notifier.domain.ledger import TERMINAL, Claim, LedgerEntry, RequestState
from services.notifier.domain.message import OutboundMessage, SendResult
from services.notifier.domain.suppression import Suppression, normalize_address


class FakeLedger:
    def __init__(self) -> None:
        self.entries: dict[str, dict[str, object]] = {}

    def _e(self, nid: str) -> dict[str, object]:
        return self.entries.setdefault(nid, {"state": None, "attempts": 0, "outcome": None, "published": False})

    async def get(self, notification_id: str) -> LedgerEntry:
        e = self._e(notification_id)
        return LedgerEntry(e["state"], int(e["attempts"]), e["outcome"], bool(e["published"]))  # type: ignore[arg-type,call-overload]

    async def mark_requested(self, notification_id: str) -> None:
        e = self._e(notification_id)
        if e["state"] is None:
            e["state"] = "requested"

    async def claim(self, notification_id: str, *, now: float, lease_s: float) -> Claim:
        e = self._e(notification_id)
        attempts = int(e["attempts"])  # type: ignore[call-overload]
        if e["state"] in TERMINAL:
            return Claim(str(e["state"]), attempts)
        if e["state"] == "sending" and float(e.get("lease_until", 0.0)) > now:  # type: ignore[arg-type]
            return Claim("busy", attempts, lease_until=float(e["lease_until"]))  # type: ignore[arg-type]
        previous = str(e["state"] or "")
        e |= {"attempts": attempts + 1, "state": "sending", "lease_until": now + lease_s}
        return Claim("claimed", attempts + 1, previous)

    def claimable(self, notification_id: str, now: float) -> bool:
        """What the claim script checks before it takes a rate-limit slot: neither finished nor
        leased to a live send."""
        e = self._e(notification_id)
        busy = e["state"] == "sending" and float(e.get("lease_until", 0.0)) > now  # type: ignore[arg-type]
        return e["state"] not in TERMINAL and not busy

    async def release(self, notification_id: str) -> None:
        e = self._e(notification_id)
        if e["state"] == "sending":
            e["state"] = "requested"

    async def finish(self, notification_id: str, state: str, outcome: Record) -> bool:
        e = self._e(notification_id)
        if e["state"] in TERMINAL:
            return False
        e |= {"state": state, "outcome": outcome, "published": False}
        return True

    async def mark_published(self, notification_id: str, state: str, outcome: Record) -> None:
        e = self._e(notification_id)
        if e["state"] not in TERMINAL:
            e |= {"state": state, "outcome": outcome}
        e["published"] = True


class FakeSuppressionList:
    def __init__(self) -> None:
        self.entries: dict[tuple[str, str], str] = {}

    async def add(self, entry: Suppression) -> None:
        self.entries[(entry.channel, entry.address)] = entry.reason

    async def reason(self, channel: str, address: str) -> str | None:
        return self.entries.get((channel, normalize_address(channel, address)))


class FakeErasedList:
    secret = "test-secret"

    def __init__(self) -> None:
        self.digests: dict[str, datetime] = {}

    async def add(self, digests: Iterable[str], erased_at: datetime) -> int:
        new = [d for d in digests if d not in self.digests]
        self.digests |= dict.fromkeys(new, erased_at)
        return len(new)

    async def erased_at(self, channel: str, address: str) -> datetime | None:
        return None


class FakeLimiter:
    def __init__(self, wait_s: float = 0.0) -> None:
        self.wait_s = wait_s

    async def acquire(self, channel: str, address: str, now: float | None = None) -> float:
        return self.wait_s


class FakeBacklog:
    def __init__(self) -> None:
        self.due: dict[str, float] = {}

    async def add(self, notification_id: str, due: float) -> int:
        self.due[notification_id] = due
        return len(self.due)

    async def remove(self, notification_id: str) -> int:
        self.due.pop(notification_id, None)
        return len(self.due)


class FakeChannel:
    """A ``ChannelSender`` answering with ``results`` in turn (then ok), keeping what it sent."""

    name = "fake"

    def __init__(self, *results: SendResult) -> None:
        self.results = list(results)
        self.sent: list[OutboundMessage] = []

    async def send(self, message: OutboundMessage) -> SendResult:
        self.sent.append(message)
        return self.results.pop(0) if self.results else SendResult("ok", "250 accepted")

    async def close(self) -> None: ...


class FakeLookupChannel(FakeChannel):
    """A ``FakeChannel`` whose provider keeps a log it can be asked (a ``DeliveryLookup``)."""

    def __init__(self, *results: SendResult, accepted: dict[str, str] | None = None) -> None:
        super().__init__(*results)
        self.accepted = dict(accepted or {})
        self.asked: list[str] = []

    async def find_sent(self, notification_id: str) -> str | None:
        self.asked.append(notification_id)
        return self.accepted.get(notification_id)


class FakeReader:
    """``RequestReader`` over the fake ledger, suppression and erased lists (the Redis adapter
    reads the three in one pipelined round trip)."""

    def __init__(self, ledger: FakeLedger, suppression: FakeSuppressionList, erased: FakeErasedList | None = None):
        self.ledger = ledger
        self.suppression = suppression
        self.erased = erased

    async def read(self, notification_id: str, channel: str, address: str, *, lead: bool) -> RequestState:
        entry = await self.ledger.get(notification_id)
        if not lead:
            return RequestState(entry)
        suppressed = await self.suppression.reason(channel, address)
        erased_at = await self.erased.erased_at(channel, address) if self.erased is not None else None
        return RequestState(entry, suppressed, erased_at)


class FakeClaimer:
    """``Claimer`` in ``RedisClaimer``'s order: an id that is finished or leased to a live send
    comes back as it is and spends no rate-limit slot; a claimable one takes its recipient's
    slot first and is ``limited`` (nothing claimed) when the window is full."""

    def __init__(self, ledger: FakeLedger, limiters: Mapping[str, FakeLimiter]):
        self.ledger = ledger
        self.limiters = limiters

    async def claim(
        self, notification_id: str, *, now: float, lease_s: float, scope: str, channel: str, address: str
    ) -> Claim:
        if self.ledger.claimable(notification_id, now):
            wait = await self.limiters[scope].acquire(channel, address, now)
            if wait > 0:
                attempts = (await self.ledger.get(notification_id)).attempts
                return Claim("limited", attempts, limited_until=now + wait)
        return await self.ledger.claim(notification_id, now=now, lease_s=lease_s)
