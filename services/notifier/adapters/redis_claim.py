"""The recipient rate limit and the send lease taken in one Redis round trip: the ledger's
claim script also counts the recipient's window (``RedisLedger.claim(limit=...)``).

Taken together, a window slot is spent only on a claim that can send: a request that finds
its id busy or already terminal no longer spends one. At most ``limit`` sends per window
still holds: every send needs a claim, and a claim needs a slot.
"""

from __future__ import annotations

from collections.abc import Mapping

from services.notifier.adapters.redis_ledger import RedisLedger
from services.notifier.adapters.redis_state import RedisRecipientLimiter
from services.notifier.domain.ledger import Claim


class RedisClaimer:
    def __init__(self, ledger: RedisLedger, limiters: Mapping[str, RedisRecipientLimiter]):
        self.ledger = ledger
        self.limiters = limiters

    async def claim(
        self, notification_id: str, *, now: float, lease_s: float, scope: str, channel: str, address: str
    ) -> Claim:
        window = self.limiters[scope].window(channel, address, now)
        return await self.ledger.claim(notification_id, now=now, lease_s=lease_s, limit=window)
