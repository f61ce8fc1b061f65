"""The scoring worker process across the real broker and Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from leadpipe.devstack.processes import ManagedProcess
from schemas.codec import Record, encode
from tests.integration.scoring.harness import (
    Reader,
    Topics,
    capture_event,
    create_topics,
    engagement_event,
    metrics_text,
    produce,
    wait_ready,
    worker,
)

pytestmark = pytest.mark.slow


@dataclass
class Running:
    bootstrap: str
    topics: Topics
    proc: ManagedProcess
    port: int


@pytest.fixture
async def running(kafka_bootstrap: str, redis_url: str, unique: str, tmp_path: Path) -> AsyncIterator[Running]:
    topics = Topics(f"cap-{unique}", f"eng-{unique}", f"scored-{unique}")
    await create_topics(kafka_bootstrap, topics.all)
    proc, port = worker(kafka_bootstrap, redis_url, unique, topics, tmp_path)
    try:
        yield Running(kafka_bootstrap, topics, proc, port)
    finally:
        proc.stop()


async def test_the_worker_scores_merges_dedupes_dead_letters_and_reports_it(running: Running):
    t = running.topics
    ready = await wait_ready(running.port)
    assert ready["checks"]["redis"]
    dana = capture_event(
        "dana@example.com", id="c-dana", qualification={"need": "replace spreadsheets", "timeline": "this quarter"}
    )
    by_phone = capture_event(None, phone="+1 415 555 0100", id="c-phone")
    linking = capture_event("dana@example.com", phone="+14155550100", id="c-link")
    reply = engagement_event("dana@example.com", "email_replied", id="e-reply")
    bad = encode(capture_event("x@example.com", id="c-bad"))
    broken = Record(bad.key, b'{"capture_id": ""}', bad.headers)
    canary = capture_event("canary@example.com", id="c-canary", synthetic=True)
    await produce(
        running.bootstrap,
        [(t.captured, dana), (t.captured, dana), (t.captured, by_phone), (t.captured, broken), (t.captured, canary)],
    )
    async with Reader(running.bootstrap, t.scored) as out:
        await out.until(lambda xs: len(xs) >= 3)
        # Linking capture and the reply only after the first ones are stored: order across topics is not ordered.
        await produce(running.bootstrap, [(t.captured, linking)])
        await out.until(lambda xs: any(x.data.merged_lead_ids for x in xs))
        await produce(running.bootstrap, [(t.engagement, reply), (t.engagement, reply)])
        events = await out.until(lambda xs: any(x.data.trigger.event_id == "e-reply" for x in xs))

    first = next(e for e in events if e.data.trigger.event_id == "c-dana")
    assert first.data.grade == "A" and first.data.model_version == "fit-2026.1"
    assert first.subject == first.data.lead_id
    assert {"seniority.director", "qualification.urgency"} <= {r.rule_id for r in first.data.reasons}
    # The same event id twice is counted once: one output for the capture, one for the reply.
    assert sum(e.data.trigger.event_id == "c-dana" for e in events) == 1
    merged = next(e for e in events if e.data.trigger.event_id == "c-link")
    phone_lead = next(e for e in events if e.data.trigger.event_id == "c-phone").data.lead_id
    assert merged.data.lead_id == first.data.lead_id and merged.data.merged_lead_ids == (phone_lead,)
    replies = [e for e in events if e.data.trigger.event_id == "e-reply"]
    assert len(replies) == 1 and replies[0].data.trigger.engagement_kind == "email_replied"
    assert 14.9 <= replies[0].data.engagement_score <= 15.0  # one reply, decayed by seconds
    canary_out = next(e for e in events if e.data.trigger.event_id == "c-canary")
    assert canary_out.synthetic

    async with Reader(running.bootstrap, f"{t.captured}.dlq", raw=True) as dlq:
        [dead] = await dlq.until(lambda xs: len(xs) >= 1)
    assert b"capture_id" in (dead.header("dlq_error_field") or b"") and dead.value == broken.value

    text = await metrics_text(running.port)
    assert f'leadpipe_events_dead_lettered_total{{reason="invalid",service="scoring",topic="{t.captured}"}} 1.0' in text
    assert "leadpipe_scoring_merges_total 1.0" in text
    assert "leadpipe_scoring_duplicate_events_total 2.0" in text
    # The canary is scored but not counted as a graded lead.
    graded = sum(
        float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith("leadpipe_scoring_grades_total{")
    )
    assert graded == 2.0  # dana (A) and the phone-only lead; the canary is not counted


async def test_a_capture_that_changes_nothing_publishes_nothing(running: Running):
    t = running.topics
    await wait_ready(running.port)
    one = capture_event("sam@example.com", id="s-1")
    again = capture_event("sam@example.com", id="s-2")
    opened = engagement_event("sam@example.com", "email_opened", id="s-open")
    async with Reader(running.bootstrap, t.scored) as out:
        await produce(running.bootstrap, [(t.captured, one), (t.captured, again)])
        await out.until(lambda xs: len(xs) >= 1)
        await produce(running.bootstrap, [(t.engagement, opened)])
        events = await out.until(lambda xs: any(x.data.trigger.event_id == "s-open" for x in xs))
    assert [e.data.trigger.event_id for e in events] == ["s-1", "s-open"]
    assert 1.99 <= events[1].data.engagement_score <= 2.0
