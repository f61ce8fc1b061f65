"""The send lease and the recipient's rate-limit slot are taken in one script
(``RedisLedger.claim(limit=...)``): a slot is spent only with a lease, so a request that finds
its id busy or finished spends none, and a full window takes no lease."""

from __future__ import annotations

import time
from typing import Any

from services.notifier.adapters.redis_ledger import RedisLedger
from services.notifier.adapters.redis_state import RedisRecipientLimiter
from tests.integration.notifier.helpers import clear_of_window_end, outcomes, request

OUT = "notification.outcome.v1"
RETRY = "notification.retry.v1"


async def test_a_full_window_takes_no_lease_and_gives_its_slot_back(redis: Any) -> None:
    prefix = f"notifier:{time.time_ns()}:"
    ledger = RedisLedger(redis, prefix=prefix)
    window = RedisRecipientLimiter(limit=1, window_s=3600, prefix=prefix).window("email", "a@x.example", 100.0)
    assert window.ends_at == 3600.0

    first = await ledger.claim("n-1", now=100.0, lease_s=30, limit=window)
    second = await ledger.claim("n-2", now=100.0, lease_s=30, limit=window)

    assert first.status == "claimed" and first.attempts == 1
    assert second.status == "limited" and second.limited_until == 3600.0 and second.attempts == 0
    assert (await ledger.get("n-2")).state is None  # no lease, no attempt counted
    assert await redis.get(window.key) == b"1"  # the refused slot was given back
    assert 0 < await redis.ttl(window.key) <= 3605


async def test_a_busy_or_finished_id_spends_no_slot_of_the_recipients_window(make_harness: Any, smtp: Any) -> None:
    h = make_harness(notifier_recipient_limit=2)
    h.notifier.clock = clock = clear_of_window_end(h.settings.notifier_recipient_window_s)
    touch = {"audience": "lead", "template": "weekly_checkin", "variables": {"first_name": "Dana"}}
    sent, sent_msg = request(address="dana@lead.example", **touch)
    await h.notifier.on_request(sent, sent_msg)
    # Another worker holds a live lease on this one: it is deferred, and spends no slot.
    busy, busy_msg = request(address="dana@lead.example", **touch)
    ledger = h.notifier.ledger
    await ledger.claim(busy.data.notification_id, now=clock(), lease_s=60)
    await h.notifier.on_request(busy, busy_msg)
    # A redelivery of the sent one takes nothing either; the window's second slot is still free.
    await h.notifier.on_request(sent, sent_msg)
    third, third_msg = request(address="dana@lead.example", **touch)
    await h.notifier.on_request(third, third_msg)

    assert len(smtp.inbox.to("dana@lead.example")) == 2
    assert [o.status for o in outcomes(h.sink.on(OUT))] == ["sent", "sent"]
    assert len(h.sink.on(RETRY)) == 1  # the busy one, to look again when its lease runs out
    assert h.metric("leadpipe_notifier_recipient_limited_total", {"scope": "lead"}) == 0
    # The window is now full: the next one is limited, and its id holds no lease.
    fourth, fourth_msg = request(address="dana@lead.example", **touch)
    await h.notifier.on_request(fourth, fourth_msg)
    assert h.metric("leadpipe_notifier_recipient_limited_total", {"scope": "lead"}) == 1
    assert (await ledger.get(fourth.data.notification_id)).state == "requested"


def test_the_test_clock_moves_past_a_windows_end_it_is_near_and_leaves_other_times_alone(monkeypatch: Any) -> None:
    hour = 1_800_000_000 // 3600 * 3600
    for real, offset_at_least in [(hour + 3600 - 10, 11.0), (hour + 1800, 0.0)]:
        monkeypatch.setattr(time, "time", lambda real=real: real)
        clock = clear_of_window_end(3600, margin_s=120)
        assert clock() - real >= offset_at_least
        assert 3600 - clock() % 3600 >= 120  # clear of its window's end
        assert clock() >= real  # never behind real time
        assert (clock() - real == 0.0) == (offset_at_least == 0.0)
