"""The console's projector against a real broker and a real PostgreSQL: events in, rows out,
idempotent by event id, and a rebuild from the topics gives the same rows."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from prometheus_client import CollectorRegistry

from leadpipe.runtime.kafka import make_consumer, make_producer, publish, send_record, topic_partitions
from schemas.assignment_response.v1 import AssignmentResponse
from schemas.base import Channel, EngagementKind, Grade, SourceKind, Stage
from schemas.codec import Record
from schemas.envelope import Envelope, new_event
from schemas.lead_assigned.v1 import LeadAssigned
from schemas.lead_captured.v1 import Identity, LeadCaptured
from schemas.lead_engagement.v1 import LeadEngagement
from schemas.lead_scored.v1 import CaptureSummary, LeadScored, Profile, Trigger
from schemas.lead_stage_changed.v1 import LeadStageChanged
from schemas.notification_outcome.v1 import NotificationOutcome
from schemas.notification_requested.v1 import NotificationRequested, Recipient
from services.console import projector
from services.console.adapters.metrics import ConsoleMetrics
from services.console.adapters.postgres_store import PostgresStore
from services.console.config import ConsoleSettings
from services.console.domain.facts import to_fact
from services.console.handlers import TOPICS, Projector


def console_settings(bootstrap: str, database_url: str, group: str) -> ConsoleSettings:
    """The console's settings for a projector test: its broker, database and consumer group."""
    return ConsoleSettings(
        kafka_bootstrap_servers=bootstrap,
        redis_url="redis://unused",
        database_url=database_url,
        console_consumer_group=group,
    )


def lead_events(run: str) -> list[Envelope[Any]]:
    now = datetime.now(UTC).replace(microsecond=0)
    lead_id, email = f"lead-{run}", f"jo.{run}@acme.test"
    captured = new_event(
        LeadCaptured(
            capture_id=f"cap-{run}", source_kind=SourceKind.WEB_FORM, captured_at=now, identity=Identity(email=email)
        ),
        source="test",
        subject=f"em_{run}",
        time=now,
    )
    scored = LeadScored(
        lead_id=lead_id,
        scored_at=now + timedelta(seconds=1),
        model_version="m1",
        fit_score=60,
        engagement_score=10,
        score=70,
        grade=Grade.A,
        core_account=True,
        profile=Profile(email=email, full_name=f"Jo {run}"),
        capture=CaptureSummary(source_kind=SourceKind.WEB_FORM, first_captured_at=now, last_captured_at=now),
        trigger=Trigger(event_id=captured.id, event_type=captured.type),
    )
    assigned = LeadAssigned(
        assignment_id=f"as-{run}",
        lead_id=lead_id,
        rep_id="rep-ana",
        team="amer",
        rule="rotation",
        reason="next in rotation",
        assigned_at=now + timedelta(seconds=2),
        accept_by=now + timedelta(minutes=15),
    )
    next_touch = now + timedelta(days=2)
    requested = NotificationRequested(
        notification_id=f"n-{run}",
        lead_id=lead_id,
        audience="rep",
        channel=Channel.EMAIL,
        recipient=Recipient(address="ana@sales.test", rep_id="rep-ana"),
        template="rep_alert",
        requested_at=now + timedelta(seconds=2),
        assignment_id=f"as-{run}",
        next_touch_at=next_touch,
    )
    alert = NotificationOutcome(
        notification_id=f"n-{run}",
        lead_id=lead_id,
        status="sent",
        channel=Channel.EMAIL,
        audience="rep",
        attempts=1,
        completed_at=now + timedelta(seconds=3),
        template="rep_alert",
        assignment_id=f"as-{run}",
    )
    accepted = AssignmentResponse(
        assignment_id=f"as-{run}",
        lead_id=lead_id,
        rep_id="rep-ana",
        response="accepted",
        responded_at=now + timedelta(seconds=40),
    )
    stage = LeadStageChanged(
        lead_id=lead_id,
        from_stage=Stage.ENGAGED,
        to_stage=Stage.SALES_QUALIFIED,
        reason="accepted by rep-ana",
        changed_at=now + timedelta(seconds=41),
        next_touch_at=next_touch,
    )
    meeting = new_event(
        LeadEngagement(
            engagement_id=f"e-{run}",
            kind=EngagementKind.MEETING_BOOKED,
            occurred_at=now + timedelta(seconds=60),
            identity=Identity(email=email),
            channel=Channel.PHONE,
            provider="console",
        ),
        source="test",
        subject=f"em_{run}",
        time=now + timedelta(seconds=60),
    )
    rescored = scored.model_copy(update={"trigger": Trigger(event_id=meeting.id, event_type=meeting.type)})
    timed = [(scored, 1), (assigned, 2), (requested, 2), (alert, 3), (accepted, 40), (stage, 41), (rescored, 61)]
    return [captured, meeting] + [
        new_event(p, source="test", subject=lead_id, time=now + timedelta(seconds=s)) for p, s in timed
    ]


async def until(check: Callable[[], Awaitable[bool]], timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(0.1)
    raise TimeoutError("condition not met")


async def test_projects_lead_events_and_rebuilds_identical_rows(
    registry_topics: str, database_url: str, unique: str
) -> None:
    settings = console_settings(registry_topics, database_url, f"console-{unique}")
    events = lead_events(unique)
    producer = make_producer(settings)
    await producer.start()
    try:
        # Arrival order across topics is not event order; duplicates are sent on purpose.
        for event in [*reversed(events), events[2], events[0]]:
            await publish(producer, event, max_bytes=1_000_000)
        # The canary's lead, scored and assigned as every 30 s in a stack: no rep's, never projected.
        for real in events[2:4]:
            canary = real.data.model_copy(update={"lead_id": f"canary-{unique}"})
            await publish(producer, new_event(canary, source="canary", subject=f"canary-{unique}", synthetic=True),
                          max_bytes=1_000_000)  # fmt: skip
        await send_record(producer, "lead.scored.v1", Record(b"k", b"not json", [("ce_id", b"x")]))
    finally:
        await producer.stop()

    store = await PostgresStore(database_url).connect()
    registry = CollectorRegistry()
    proj = Projector(store, ConsoleMetrics(registry), privacy_secret=settings.leadpipe_privacy_secret)
    try:
        assert await store.migrate() == [1, 2, 3, 4]
        assert await store.migrate() == []  # idempotent
        task = asyncio.create_task(projector.run(settings, proj, asyncio.Event()))
        lead_id = f"lead-{unique}"

        async def projected() -> bool:
            lead = await store.lead(lead_id)
            return (
                lead is not None and lead.last_outcome == "meeting_booked" and len(await store.timeline(lead_id)) == 9
            )

        try:
            await until(projected)
            # Let it catch up with whatever else the session put on these topics.
            count = -1
            while count != (count := await store.event_count()):
                await asyncio.sleep(1.0)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

        lead = await store.lead(lead_id)
        assert lead is not None
        assert (lead.grade, lead.stage, lead.rep_id, lead.assignment_status) == (
            "A",
            "sales_qualified",
            "rep-ana",
            "accepted",
        )
        assert lead.next_touch_at == events[0].time + timedelta(days=2)
        assert lead.accepted_at is not None and lead.captured_at is not None
        assert (lead.accepted_at - lead.captured_at).total_seconds() == 40
        kinds = [e["type"] for e in await store.timeline(lead_id)]
        assert kinds[0] == "lead.captured" and kinds.count("lead.scored") == 2
        assert registry.get_sample_value("console_events_duplicate_total") >= 2
        assert registry.get_sample_value("console_events_undecodable_total", {"topic": "lead.scored.v1"}) == 1
        assert await store.lead(f"canary-{unique}") is None
        assert registry.get_sample_value("console_events_synthetic_total") >= 2

        live = await store.dump()
        # The operator's command, as run against a deployment: drop the projection, replay the topics.
        env = os.environ | {"KAFKA_BOOTSTRAP_SERVERS": registry_topics, "REDIS_URL": "redis://unused",
                            "DATABASE_URL": database_url, "LOG_JSON": "false"}  # fmt: skip
        cli = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "leadpipe.cli", "console", "rebuild", env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        out, _ = await asyncio.wait_for(cli.communicate(), 60)
        assert cli.returncode == 0, out.decode()
        assert f"rebuilt the projection from {len(live['console_events'])} events" in out.decode()
        assert await store.dump() == live
    finally:
        await store.close()


async def group_caught_up(settings: ConsoleSettings) -> bool:
    """The console's consumer group has committed the end of every topic it reads."""
    consumer = make_consumer(settings, group_id=settings.console_consumer_group)
    await consumer.start()
    try:
        tps = [tp for tps in (await topic_partitions(consumer, TOPICS)).values() for tp in tps]
        ends = await consumer.end_offsets(tps)
        committed = [(await consumer.committed(tp)) or 0 for tp in tps]
        return all(c >= ends[tp] for c, tp in zip(committed, tps, strict=True))
    finally:
        await consumer.stop()


async def test_a_new_empty_database_is_filled_from_the_topics_though_the_group_has_read_them(
    registry_topics: str, postgres_server: str, unique: str
) -> None:
    import psycopg

    from services.console.app import create_app

    urls = []
    for n in (1, 2):
        async with await psycopg.AsyncConnection.connect(postgres_server, autocommit=True) as conn:
            await conn.execute(f"CREATE DATABASE r{n}_{unique}")  # type: ignore[arg-type]  # a generated name
        urls.append(postgres_server.rsplit("/", 1)[0] + f"/r{n}_{unique}")
    events = lead_events(unique)
    lead_id = f"lead-{unique}"

    async def console_sees_the_lead(database_url: str) -> None:
        settings = console_settings(registry_topics, database_url, f"console-{unique}")  # the same group both times
        app = create_app(settings)
        store = await PostgresStore(database_url).connect()
        try:
            async with app.router.lifespan_context(app):

                async def seen() -> bool:
                    return len(await store.timeline(lead_id)) == len(events)

                await until(seen, 30)
                await until(lambda: group_caught_up(settings), 30)
        finally:
            await store.close()

    producer = make_producer(ConsoleSettings(kafka_bootstrap_servers=registry_topics, redis_url="r", database_url="d"))
    await producer.start()
    try:
        for event in events:
            await publish(producer, event, max_bytes=1_000_000)
    finally:
        await producer.stop()
    await console_sees_the_lead(urls[0])
    await console_sees_the_lead(urls[1])  # the group's offsets are past the lead's events by now


async def test_an_event_reaches_an_idle_projector_without_waiting_out_its_long_poll(
    registry_topics: str, database_url: str, unique: str
) -> None:
    settings = console_settings(registry_topics, database_url, f"console-{unique}")
    store = await PostgresStore(database_url).connect()
    proj = Projector(store, ConsoleMetrics(CollectorRegistry()), privacy_secret=settings.leadpipe_privacy_secret)
    producer = make_producer(settings)
    await producer.start()
    ready = asyncio.Event()
    try:
        await store.migrate()
        task = asyncio.create_task(projector.run(settings, proj, ready))
        try:
            await asyncio.wait_for(ready.wait(), 60)
            # Caught up with what the session put on these topics, then idle in a long poll.
            count = -1
            while count != (count := await store.event_count()):
                await asyncio.sleep(1.0)
            captured = lead_events(unique)[0]
            sent = time.monotonic()
            await publish(producer, captured, max_bytes=1_000_000)

            async def stored() -> bool:
                return await store.event_count() > count

            await until(stored, timeout_s=projector.IDLE_POLL_MS / 1000)
            took = time.monotonic() - sent
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        # Generous for a loaded machine, and a third of the idle poll it would otherwise wait out.
        assert took < projector.IDLE_POLL_MS / 3000, f"projected {took:.1f} s after it was published"
    finally:
        await producer.stop()
        await store.close()


async def test_a_trigger_scored_twice_shows_once_on_the_timeline_as_its_later_score(database_url: str, unique: str):
    """A re-run of scoring (after a crash mid-batch) publishes a second ``lead.scored`` for the
    same capture under a new id. Both are kept and folded; the timeline names the capture's
    scoring once, with the later score, in whichever order the two arrived."""
    captured, meeting, scored, *_, rescored = lead_events(unique)
    rerun = new_event(scored.data.model_copy(update={"score": 72.0}), source="test", subject=scored.subject,
                      time=scored.time + timedelta(milliseconds=500))  # fmt: skip

    def fact(e: Envelope[Any]) -> Any:
        return to_fact(e.data.EVENT_TYPE, e.id, e.time, e.data.model_dump(mode="json"))

    store = await PostgresStore(database_url).connect()
    try:
        await store.migrate()
        await store.project([fact(e) for e in (captured, meeting, rerun, rescored)])
        await store.project([fact(scored)])  # the earlier one arrives last
        lead_id = f"lead-{unique}"
        scorings = [e for e in await store.timeline(lead_id) if e["type"] == "lead.scored"]
        assert [e["event_id"] for e in scorings] == [rerun.id, rescored.id]
        assert scorings[0]["summary"].startswith("scored 72, grade A")
        stored = [e for e in (await store.dump())["console_events"] if e["type"] == "lead.scored"]
        assert {e["event_id"] for e in stored} == {scored.id, rerun.id, rescored.id}  # all kept
        row = await store.lead(lead_id)
        assert row is not None and row.score == 70.0  # the fold: the latest scoring (the meeting's)
    finally:
        await store.close()
