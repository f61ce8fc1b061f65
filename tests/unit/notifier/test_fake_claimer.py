"""The handler tests' claimer keeps the production order (``RedisClaimer``): a finished or busy id
spends no rate-limit slot; a claimable one is limited, not claimed, when its window is full."""

from __future__ import annotations

from tests.unit.notifier.fakes import FakeClaimer, FakeLedger, FakeLimiter


class CountingLimiter(FakeLimiter):
    def __init__(self, wait_s: float = 0.0) -> None:
        super().__init__(wait_s)
        self.asked = 0

    async def acquire(self, channel: str, address: str, now: float | None = None) -> float:
        self.asked += 1
        return await super().acquire(channel, address, now)


async def claim(claimer: FakeClaimer, nid: str, now: float = 100.0) -> str:
    return (await claimer.claim(nid, now=now, lease_s=30, scope="lead", channel="email", address="a@x")).status


async def test_a_finished_or_busy_id_spends_no_slot() -> None:
    ledger, limiter = FakeLedger(), CountingLimiter()
    claimer = FakeClaimer(ledger, {"lead": limiter})
    assert await claim(claimer, "n1") == "claimed" and limiter.asked == 1
    assert await claim(claimer, "n1", now=110.0) == "busy" and limiter.asked == 1
    await ledger.finish("n1", "sent", outcome=None)  # type: ignore[arg-type]
    assert await claim(claimer, "n1", now=200.0) == "sent" and limiter.asked == 1


async def test_a_full_window_limits_a_claimable_id_and_claims_nothing() -> None:
    ledger, limiter = FakeLedger(), CountingLimiter(wait_s=5.0)
    claimer = FakeClaimer(ledger, {"lead": limiter})
    result = await claimer.claim("n2", now=100.0, lease_s=30, scope="lead", channel="email", address="a@x")
    assert (result.status, result.limited_until, limiter.asked) == ("limited", 105.0, 1)
    assert (await ledger.get("n2")).state is None  # no lease taken, no attempt counted
