"""kill -9 the real nurture worker while touches are pending and firing: after a restart every
scheduled touch is requested, none is lost, and a touch repeated by the crash keeps its id."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from tests.integration.nurture.harness import (
    Reader,
    Setup,
    create_topics,
    produce,
    scored,
    start_worker,
    wait_ready,
    write_config,
)

pytestmark = [pytest.mark.chaos, pytest.mark.slow]
LEADS = 30
STEPS = 3


async def test_kill_9_with_touches_pending_loses_none_and_repeats_none(
    kafka_bootstrap: str, redis_url: str, unique: str, tmp_path: Path
):
    books, directory = write_config(tmp_path, second_step_s=2.0)
    setup = Setup(f"k{unique}.", books, directory)
    await create_topics(kafka_bootstrap, setup)
    leads = [f"ld_{unique}_{n}" for n in range(LEADS)]
    # Short group timeouts (6 s: Kafka's group.min.session.timeout.ms): the restarted worker need not
    # wait long for the killed member to expire.
    env = {"NURTURE_CLAIM_LEASE_S": "2", "KAFKA_SESSION_TIMEOUT_S": "6", "KAFKA_REBALANCE_TIMEOUT_S": "6"}
    proc, port = start_worker(kafka_bootstrap, redis_url, unique, setup, tmp_path, **env)
    try:
        await wait_ready(port)
        async with Reader(kafka_bootstrap, setup.t("notification.requested.v1")) as out:
            await produce(kafka_bootstrap, [(setup.t("lead.scored.v1"), scored(lead, grade="B")) for lead in leads])

            def step(n: int) -> int:
                return sum(1 for e in out.of("notification.requested.v1") if e.data.touch and e.data.touch.step == n)

            await out.until(lambda r: step(0) >= LEADS, timeout_s=20)
            await out.until(lambda r: step(1) >= 1, timeout_s=20)
            proc.kill9()  # the step-1 burst is being fired; step 2 is still pending for everyone
            fired_before = len(out.items)
            proc, port = start_worker(kafka_bootstrap, redis_url, unique, setup, tmp_path, **env)
            await wait_ready(port)
            await out.until(lambda r: len({e.data.notification_id for e in r.of("notification.requested.v1")})
                            >= LEADS * STEPS, timeout_s=40)  # fmt: skip
            await out.poll(1.0)
    finally:
        proc.stop()

    requests = [e for e in out.of("notification.requested.v1")]
    expected = {f"touch:{lead}:0:grade_b:{n}" for lead in leads for n in range(STEPS)}
    ids = Counter(e.data.notification_id for e in requests)
    assert set(ids) == expected, f"missing {expected - set(ids)}, unexpected {set(ids) - expected}"
    # A request re-sent because of the crash is the same request: same notification id and
    # the same event id, so the notifier sends it once.
    by_id: dict[str, set[str]] = {}
    for e in requests:
        by_id.setdefault(e.data.notification_id, set()).add(e.id)
    assert all(len(v) == 1 for v in by_id.values())
    repeated = sum(c - 1 for c in ids.values())
    print(f"kill -9: {len(requests)} requests, {len(ids)} distinct, {repeated} repeated by the crash")
    assert repeated <= LEADS, f"{repeated} repeated records"
    assert fired_before < len(requests)
