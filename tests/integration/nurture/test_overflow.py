"""A full team, across the process boundary: the real nurture worker on private topics with a
tiny sales team (three reps, one lead a day each). Each hot lead nobody has room for is queued
and its manager alerted at once; a decline frees a place and the hottest queued lead takes it;
a least-loaded team takes its overflow past capacity; a Redis wiped under the worker comes back
with the queue and the capacity used (so the queue is not served as if the day were new)."""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from prometheus_client import CollectorRegistry
from redis.asyncio import Redis

from schemas.assignment_response.v1 import AssignmentResponse
from schemas.envelope import new_event
from services.nurture.adapters.metrics import NurtureMetrics
from services.nurture.adapters.redis_store import RedisNurtureStore
from services.nurture.domain.engine import Nurture
from services.nurture.domain.playbooks import parse_playbooks
from services.nurture.domain.routing import parse_directory
from services.nurture.handlers import Links, NurtureHandler
from tests.integration.nurture.harness import (
    ALWAYS,
    Reader,
    Setup,
    create_topics,
    metrics_text,
    produce,
    scored,
    start_worker,
    wait_ready,
    write_config,
)
from tests.integration.nurture.test_store import ListLog, ListPublisher
from tests.support.zones import zone_at_midday

pytestmark = [pytest.mark.slow]
MANAGER = "mo@sales.test"


def tiny_team(path: object) -> None:
    """Team us: two US reps, queue on overflow. Team de: one DE rep, least-loaded on overflow.
    The reps' zone is one where it is midday now: the worker runs on the real clock, and a day
    that ended mid-module would give every rep a place again."""
    zone = zone_at_midday()

    def rep(rep_id: str, team: str, country: str) -> dict[str, object]:
        return {"id": rep_id, "name": rep_id, "team": team, "territories": [country], "daily_capacity": 1,
                "timezone": zone, "working_hours": ALWAYS, "manager": "mgr",
                "alert": {"channel": "email", "address": f"{rep_id}@sales.test"}}  # fmt: skip

    doc = {
        "version": "tiny",
        "managers": [{"id": "mgr", "name": "Manager Mo", "alert": {"channel": "email", "address": MANAGER}}],
        "teams": [{"id": "us", "manager": "mgr", "overflow": "queue"},
                  {"id": "de", "manager": "mgr", "overflow": "least_loaded"}],
        "reps": [rep("us-0", "us", "US"), rep("us-1", "us", "US"), rep("de-0", "de", "DE")],
    }  # fmt: skip
    path.write_text(yaml.safe_dump(doc))  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def running(
    kafka_bootstrap: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Setup, int, str]]:
    unique = uuid.uuid4().hex[:8]
    tmp = tmp_path_factory.mktemp("overflow")
    books, directory = write_config(tmp)
    tiny_team(directory)
    setup = Setup(f"o{unique}.", books, directory)
    asyncio.run(create_topics(kafka_bootstrap, setup))
    proc, port = start_worker(kafka_bootstrap, redis_url, unique, setup, tmp)
    try:
        asyncio.run(wait_ready(port))
        yield setup, port, unique
    finally:
        proc.stop()


def gauge(text: str, name: str, **labels: str) -> float | None:
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    series = f"{name}{{{want}}}" if labels else name
    found = re.search(rf"^{re.escape(series)} (\S+)$", text, re.M)
    return float(found.group(1)) if found else None


async def wait_gauge(port: int, name: str, value: float, timeout_s: float = 10.0, **labels: str) -> None:
    deadline = time.monotonic() + timeout_s
    while (seen := gauge(await metrics_text(port), name, **labels)) != value:
        if time.monotonic() > deadline:
            raise AssertionError(f"{name}{labels} is {seen}, not {value}")
        await asyncio.sleep(0.2)


def assigned(r: Reader, lead: str) -> list[object]:
    return [e.data for e in r.of("lead.assigned.v1") if e.data.lead_id == lead]


def overflow_alerts(r: Reader, lead: str) -> list[object]:
    return [e.data for e in r.of("notification.requested.v1")
            if e.data.lead_id == lead and e.data.template == "manager_overflow"]  # fmt: skip


async def test_a_full_team_alerts_its_manager_at_once_per_queued_lead_and_serves_the_hottest_when_a_place_frees(
    kafka_bootstrap: str, redis_url: str, running: tuple[Setup, int, str]
):
    setup, port, unique = running
    run = uuid.uuid4().hex[:6]
    first = [f"ld_{run}_first{n}" for n in range(3)]
    queued = {f"ld_{run}_warm": 70.0, f"ld_{run}_hot": 95.0, f"ld_{run}_mid": 85.0}
    async with Reader(kafka_bootstrap, setup.t("lead.assigned.v1"), setup.t("notification.requested.v1")) as out:
        # Three hot leads fill the three places (the third goes to the DE rep: a rep with room
        # anywhere takes a lead before it waits).
        await produce(kafka_bootstrap, [(setup.t("lead.scored.v1"), scored(lead)) for lead in first])
        await out.until(lambda r: all(assigned(r, lead) for lead in first), timeout_s=15)
        assert {a.rep_id for lead in first for a in assigned(out, lead)} == {"us-0", "us-1", "de-0"}  # type: ignore[attr-defined]

        # Three more: nobody has room. Each is queued and the manager alerted at once, with the card.
        for lead, score in queued.items():
            sent = time.monotonic()
            await produce(kafka_bootstrap, [(setup.t("lead.scored.v1"), scored(lead, score=score))])
            await out.until(lambda r, lead=lead: overflow_alerts(r, lead), timeout_s=10)
            seen = next(t for _, e, t in out.items if getattr(e.data, "template", "") == "manager_overflow"
                        and e.data.lead_id == lead)  # fmt: skip
            assert seen - sent < 1.0, f"manager alert for {lead} after {seen - sent:.2f}s"
        for lead, score in queued.items():
            (alert,) = overflow_alerts(out, lead)
            assert (alert.audience, alert.recipient.address, alert.priority) == ("manager", MANAGER, "high")  # type: ignore[attr-defined]
            assert alert.variables["team"] == "us" and alert.variables["lead"]["score"] == score  # type: ignore[attr-defined]
            assert alert.variables["lead"]["reasons"] == ["Director-level title"]  # type: ignore[attr-defined]
            assert assigned(out, lead) == []
        await wait_gauge(port, "leadpipe_nurture_overflow_queue_depth", 3, team="us")

        # us-0 declines its lead: that lead waits too (every rep with room already had it) and
        # the place it freed goes to the hottest queued lead, at once.
        us0 = next(a for lead in first for a in assigned(out, lead) if a.rep_id == "us-0")  # type: ignore[attr-defined]
        decline = AssignmentResponse(assignment_id=us0.assignment_id, lead_id=us0.lead_id, rep_id="us-0",
                                     response="declined", responded_at=datetime.now(UTC))  # fmt: skip
        started = time.monotonic()
        await produce(kafka_bootstrap, [(setup.t("assignment.response.v1"),
                                         new_event(decline, source="/t", subject=us0.lead_id))])  # fmt: skip
        hot = f"ld_{run}_hot"
        await out.until(lambda r: assigned(r, hot), timeout_s=10)
        took = next(t for _, e, t in out.items if getattr(e.data, "lead_id", "") == hot
                    and e.type.endswith("lead.assigned"))  # fmt: skip
        assert took - started < 1.5, f"the queue was served {took - started:.2f}s after the decline"
        (served,) = assigned(out, hot)
        assert served.rep_id == "us-0"  # type: ignore[attr-defined]
        # Published with the assignment, on another topic: it can come in the reader's next fetch.
        await out.until(lambda r: any(e.data.template == "rep_alert" for e in r.of("notification.requested.v1")
                                      if e.data.lead_id == hot), timeout_s=5)  # fmt: skip
        await out.until(lambda r: overflow_alerts(r, us0.lead_id), timeout_s=5)
        await out.poll(0.5)
        for lead in (f"ld_{run}_mid", f"ld_{run}_warm"):
            assert assigned(out, lead) == []
        await wait_gauge(port, "leadpipe_nurture_overflow_queue_depth", 3, team="us")

        # A DE lead: team de overflows to its least-loaded rep past capacity, no queue, no alert.
        de_lead = f"ld_{run}_de"
        await produce(kafka_bootstrap, [(setup.t("lead.scored.v1"), scored(de_lead, country="DE"))])
        await out.until(lambda r: assigned(r, de_lead), timeout_s=10)
        (de,) = assigned(out, de_lead)
        assert (de.rep_id, de.rule) == ("de-0", "rotation") and "past capacity" in de.reason  # type: ignore[attr-defined]
        assert overflow_alerts(out, de_lead) == []

        # Redis wiped under the worker: the queue and the capacity used come back from the state
        # topic, so nothing is served from the queue as if every rep had a free day.
        redis = Redis.from_url(redis_url)
        keys = [k async for k in redis.scan_iter(match=f"nurture:{unique}:*")]
        assert await redis.delete(*keys) == len(keys)
        await redis.aclose()
        text = ""
        deadline = time.monotonic() + 15
        while gauge(text, "leadpipe_nurture_rebuilds_total") != 2.0:  # the start's and this one
            assert time.monotonic() < deadline, "no rebuild after the wipe"
            await asyncio.sleep(0.2)
            text = await metrics_text(port)
        await wait_gauge(port, "leadpipe_nurture_overflow_queue_depth", 3, team="us")
        await out.poll(1.5)
    for lead in (f"ld_{run}_mid", f"ld_{run}_warm", us0.lead_id):
        assert len(assigned(out, lead)) == (1 if lead == us0.lead_id else 0), lead
    text = await metrics_text(port)
    assert gauge(text, "leadpipe_nurture_overflow_total", team="us", policy="queue") == 4.0
    assert gauge(text, "leadpipe_nurture_overflow_total", team="de", policy="least_loaded") == 1.0


async def test_a_lead_queued_at_the_end_of_a_full_day_is_assigned_when_the_reps_next_day_begins(
    redis_url: str, tmp_path: Path
):
    """In process against the real Redis, with the clock in the test's hands (capacity is per
    rep per local day: nothing frees it but a new day)."""
    books, directory = write_config(tmp_path, capacity=1, reps=2, zone="UTC")
    engine = Nurture(parse_playbooks(yaml.safe_load(books.read_text())),
                     parse_directory(yaml.safe_load(directory.read_text())))  # fmt: skip
    now = [datetime(2026, 5, 4, 23, 50, tzinfo=UTC)]
    redis = Redis.from_url(redis_url)
    pub = ListPublisher()
    h = NurtureHandler(engine, RedisNurtureStore(redis, f"nurture:{uuid.uuid4().hex[:8]}:"), pub, ListLog(),
                       NurtureMetrics(CollectorRegistry()), Links("s", "http://x", 60), clock=lambda: now[0])  # fmt: skip
    try:
        for lead in ("ld_a", "ld_b", "ld_late"):
            await h.handle(scored(lead))
        assert [e.data.lead_id for e in pub.events if e.type.endswith("lead.assigned")] == ["ld_a", "ld_b"]
        assert [e.data.template for e in pub.events if e.data.lead_id == "ld_late" and e.type.endswith("requested")
                and e.data.audience == "manager"] == ["manager_overflow"]  # fmt: skip
        assert await h.serve_queue() == 0  # still the same day: nobody has room
        now[0] += timedelta(minutes=15)  # 00:05 the next day in the reps' zone (UTC)
        assert await h.serve_queue() == 1
        (served,) = [e.data for e in pub.events if e.type.endswith("lead.assigned") and e.data.lead_id == "ld_late"]
        assert served.assigned_at == now[0] and await h.store.queue() == []
        state = await h.store.load("ld_late")
        assert state is not None and state.queued is None and state.assignment is not None
        assert state.assignment.capacity_day == "2026-05-05"
    finally:
        await redis.aclose()


async def test_a_place_given_back_by_an_unaccepted_assignment_goes_to_the_waiting_lead(redis_url: str, tmp_path: Path):
    """In process against the real Redis: the rep who let the SLA lapse gives the place back; the
    lead they ignored goes on to wait too (every rep with room has had it), so the place goes to
    the lead that was already waiting."""
    books, directory = write_config(tmp_path, capacity=1, reps=2, zone="UTC")
    engine = Nurture(parse_playbooks(yaml.safe_load(books.read_text())),
                     parse_directory(yaml.safe_load(directory.read_text())))  # fmt: skip
    now = [datetime(2026, 5, 4, 10, 0, tzinfo=UTC)]
    redis = Redis.from_url(redis_url)
    pub = ListPublisher()
    h = NurtureHandler(engine, RedisNurtureStore(redis, f"nurture:{uuid.uuid4().hex[:8]}:"), pub, ListLog(),
                       NurtureMetrics(CollectorRegistry()), Links("s", "http://x", 60), clock=lambda: now[0])  # fmt: skip
    try:
        for lead in ("ld_a", "ld_b", "ld_waiting"):
            await h.handle(scored(lead))
            now[0] += timedelta(minutes=1)
        lapsed = await h.store.load("ld_a")
        assert lapsed is not None and lapsed.assignment is not None
        now[0] = lapsed.assignment.accept_by
        await h.tick(lease_s=5, limit=10)
        assert h.capacity_freed.is_set()  # the scheduler serves the queue at once
        assert await h.serve_queue() == 1
        (served,) = [e.data for e in pub.events if e.type.endswith("lead.assigned") and e.data.lead_id == "ld_waiting"]
        assert served.rep_id == lapsed.assignment.rep_id
        requeued = await h.store.load("ld_a")
        assert requeued is not None and requeued.queued is not None and requeued.assignment is None
        assert [e.lead_id for e in await h.store.queue()] == ["ld_a"]
    finally:
        await redis.aclose()


async def test_a_broken_or_orphaned_queue_entry_never_stops_the_leads_behind_it(redis_url: str, tmp_path: Path):
    books, directory = write_config(tmp_path, capacity=1, reps=1, zone="UTC")
    engine = Nurture(parse_playbooks(yaml.safe_load(books.read_text())),
                     parse_directory(yaml.safe_load(directory.read_text())))  # fmt: skip
    now = [datetime(2026, 5, 4, 10, 0, tzinfo=UTC)]
    redis = Redis.from_url(redis_url)
    pub = ListPublisher()
    h = NurtureHandler(engine, RedisNurtureStore(redis, f"nurture:{uuid.uuid4().hex[:8]}:"), pub, ListLog(),
                       NurtureMetrics(CollectorRegistry()), Links("s", "http://x", 60), clock=lambda: now[0])  # fmt: skip
    try:
        await h.handle(scored("ld_first"))
        await h.handle(scored("ld_waiting", score=70))
        # A lead gone from Redis but still in the queue index, hotter than the one waiting, and
        # an entry that does not parse.
        gone = '{"team": "sales", "grade": "A", "score": 99, "since": "2026-05-04T09:00:00+00:00", "exclude": []}'
        await redis.hset(h.store.queue_key, mapping={"ld_gone": gone, "ld_garbled": "{not json"})
        now[0] += timedelta(days=1)
        await h.serve_queue()
        assigned = [e.data.lead_id for e in pub.events if e.type.endswith("lead.assigned")]
        assert assigned == ["ld_first", "ld_waiting"]
        assert await redis.hkeys(h.store.queue_key) == [b"ld_garbled"]  # the orphan is dropped
    finally:
        await redis.aclose()
