"""Everything a request is decided on, read in one Redis round trip: the ledger entry (and,
guarded, the built marker), and for a message to a lead the address's suppression reason and
erasure time. A pipeline without MULTI: these reads were separate round trips before, each
its own instant, so reading them back to back in one pipeline promises no less. Nothing here
decides; the claim script still re-checks the ledger atomically before anything is sent."""

from __future__ import annotations

from services.notifier.adapters.redis_ledger import RedisLedger
from services.notifier.adapters.redis_state import RedisErasedList, RedisSuppressionList
from services.notifier.domain.ledger import RequestState


class RedisRequestReader:
    def __init__(self, ledger: RedisLedger, suppression: RedisSuppressionList, erased: RedisErasedList | None):
        self.ledger = ledger
        self.suppression = suppression
        self.erased = erased

    async def read(self, notification_id: str, channel: str, address: str, *, lead: bool) -> RequestState:
        pipe = self.ledger.redis.pipeline(transaction=False)
        n = self.ledger.queue_get(pipe, notification_id)
        digest = self.erased.digest(channel, address) if lead and self.erased is not None else None
        if lead:
            pipe.get(self.suppression.key(channel, address))
        if digest is not None:
            assert self.erased is not None
            pipe.get(self.erased.key(digest))
        replies = await pipe.execute()
        entry = self.ledger.entry_from(replies[:n])
        if not lead:
            return RequestState(entry)
        suppressed = self.suppression.reason_from(replies[n])
        erased_at = None
        if digest is not None:
            assert self.erased is not None
            erased_at = self.erased.erased_at_from(replies[n + 1])
        return RequestState(entry, suppressed, erased_at)
