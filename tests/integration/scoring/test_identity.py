"""Who is the same person, across the real scoring process, broker and Redis; and the split command."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import orjson
import pytest
from redis.asyncio import Redis

from leadpipe.devstack.processes import ManagedProcess
from services.scoring.split import SPLIT_EVENT_TYPE, split_cause
from tests.integration.scoring.harness import (
    REPO,
    Reader,
    Topics,
    capture_event,
    create_topics,
    produce,
    wait_ready,
    worker,
)

pytestmark = pytest.mark.slow

SWITCHBOARD = "+1 415 555 0100"


@dataclass
class Running:
    bootstrap: str
    redis_url: str
    unique: str
    topics: Topics
    proc: ManagedProcess


@pytest.fixture(scope="module")
def running(kafka_bootstrap: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    # One worker for the module: each test uses its own people.
    unique = uuid.uuid4().hex[:10]
    topics = Topics(f"cap-{unique}", f"eng-{unique}", f"scored-{unique}")
    asyncio.run(create_topics(kafka_bootstrap, topics.all))
    proc, port = worker(kafka_bootstrap, redis_url, unique, topics, tmp_path_factory.mktemp("identity"))
    try:
        asyncio.run(wait_ready(port))
        yield Running(kafka_bootstrap, redis_url, unique, topics, proc)
    finally:
        proc.stop()


async def test_two_colleagues_with_one_switchboard_number_are_two_leads_each_scored(running: Running):
    t = running.topics
    ana = capture_event("ana@acme-corp.com", phone=SWITCHBOARD, id="sw-ana")
    ben = capture_event("ben@acme-corp.com", phone=SWITCHBOARD, id="sw-ben", title="VP Sales")
    async with Reader(running.bootstrap, t.scored) as out:
        await produce(running.bootstrap, [(t.captured, ana)])
        await out.until(lambda xs: any(x.data.trigger.event_id == "sw-ana" for x in xs))
        await produce(running.bootstrap, [(t.captured, ben)])
        events = await out.until(lambda xs: any(x.data.trigger.event_id == "sw-ben" for x in xs))
    [a] = [e.data for e in events if e.data.trigger.event_id == "sw-ana"]
    [b] = [e.data for e in events if e.data.trigger.event_id == "sw-ben"]
    assert a.lead_id != b.lead_id and b.merged_lead_ids == ()
    assert (a.profile.email, b.profile.email) == ("ana@acme-corp.com", "ben@acme-corp.com")
    assert a.profile.phone == b.profile.phone == "+14155550100"


async def test_the_same_email_with_a_new_mobile_is_one_lead(running: Running):
    t = running.topics
    first = capture_event("dana@acme-corp.com", phone="+1 415 555 0123", id="mob-1")
    second = capture_event("dana@acme-corp.com", phone="+1 415 555 0188", id="mob-2", title="CTO")
    async with Reader(running.bootstrap, t.scored) as out:
        await produce(running.bootstrap, [(t.captured, first)])
        await out.until(lambda xs: any(x.data.trigger.event_id == "mob-1" for x in xs))
        await produce(running.bootstrap, [(t.captured, second)])
        events = await out.until(lambda xs: any(x.data.trigger.event_id == "mob-2" for x in xs))
    [one] = [e.data for e in events if e.data.trigger.event_id == "mob-1"]
    [two] = [e.data for e in events if e.data.trigger.event_id == "mob-2"]
    assert one.lead_id == two.lead_id and two.profile.phone == "+14155550188"


async def leadpipe(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "leadpipe.cli", *args]
    return await asyncio.to_thread(
        subprocess.run, cmd, env=os.environ | env, cwd=REPO, capture_output=True, text=True, timeout=120
    )


async def test_the_split_command_republishes_both_leads_and_the_next_capture_stays_apart(running: Running):
    t = running.topics
    form = capture_event("eve@acme-corp.com", phone="+1 415 555 0142", id="sp-form", title="CFO")
    # A booth scan with no email and the same mobile links to Eve; the operator knows it was someone else.
    scan = capture_event(None, phone="+1 415 555 0142", id="sp-scan", title="Engineer", capture_id="cap-scan",
                         identity={"show_id": "expo-26", "badge_id": "B-31", "phone": "+1 415 555 0142"})  # fmt: skip
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": running.bootstrap, "REDIS_URL": running.redis_url,
        "SCORING_REDIS_PREFIX": f"scoring:{running.unique}:", "SCORING_OUTPUT_TOPIC": t.scored,
        "SCORING_STATE_TOPIC": t.state,
    }  # fmt: skip
    async with Reader(running.bootstrap, t.scored) as out:
        await produce(running.bootstrap, [(t.captured, form)])
        await out.until(lambda xs: any(x.data.trigger.event_id == "sp-form" for x in xs))
        await produce(running.bootstrap, [(t.captured, scan)])
        events = await out.until(lambda xs: any(x.data.trigger.event_id == "sp-scan" for x in xs))
        eve = next(e.data for e in events if e.data.trigger.event_id == "sp-form").lead_id
        assert next(e.data for e in events if e.data.trigger.event_id == "sp-scan").lead_id == eve

        missing = await leadpipe(env, "scoring", "split", "--lead-id", eve, "--capture-id", "nope")
        assert missing.returncode == 2 and "--capture-id: 'nope' is not a capture of lead" in missing.stderr

        done = await leadpipe(env, "scoring", "split", "--lead-id", eve, "--capture-id", "cap-scan")
        assert done.returncode == 0, done.stderr
        cause = split_cause(eve, "cap-scan")
        events = await out.until(lambda xs: sum(x.data.trigger.event_id == cause for x in xs) >= 2)
        split = [e.data for e in events if e.data.trigger.event_id == cause]
        assert {s.trigger.event_type for s in split} == {SPLIT_EVENT_TYPE}
        kept = next(s for s in split if s.lead_id == eve)
        off = next(s for s in split if s.lead_id != eve)
        assert (kept.profile.job_title, off.profile.job_title) == ("CFO", "Engineer")

        # The visitor scans again at the booth: it is the split-off lead, not Eve.
        again = capture_event(None, id="sp-scan-2", title="Staff Engineer", capture_id="cap-scan-2",
                              identity={"show_id": "expo-26", "badge_id": "B-31"})  # fmt: skip
        await produce(running.bootstrap, [(t.captured, again)])
        events = await out.until(lambda xs: any(x.data.trigger.event_id == "sp-scan-2" for x in xs))
    assert next(e.data for e in events if e.data.trigger.event_id == "sp-scan-2").lead_id == off.lead_id


async def test_a_lead_stored_before_leads_kept_captures_is_split_from_lead_captured(running: Running):
    t = running.topics
    form = capture_event("fay@acme-corp.com", phone="+1 415 555 0151", id="lg-form", title="COO")
    scan = capture_event(None, id="lg-scan", title="Intern", capture_id="cap-lg-scan",
                         identity={"show_id": "expo-26", "badge_id": "B-44", "phone": "+1 415 555 0151"})  # fmt: skip
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": running.bootstrap, "REDIS_URL": running.redis_url,
        "SCORING_REDIS_PREFIX": f"scoring:{running.unique}:", "SCORING_OUTPUT_TOPIC": t.scored,
        "SCORING_STATE_TOPIC": t.state, "SCORING_INPUT_TOPICS": f"{t.captured},{t.engagement}",
    }  # fmt: skip
    async with Reader(running.bootstrap, t.scored) as out:
        await produce(running.bootstrap, [(t.captured, form)])
        await out.until(lambda xs: any(x.data.trigger.event_id == "lg-form" for x in xs))
        await produce(running.bootstrap, [(t.captured, scan)])
        events = await out.until(lambda xs: any(x.data.trigger.event_id == "lg-scan" for x in xs))
        fay = next(e.data for e in events if e.data.trigger.event_id == "lg-form").lead_id
        redis = Redis.from_url(running.redis_url)
        try:  # as a worker before this version stored it: no captures kept
            key = f"scoring:{running.unique}:lead:{fay}"
            # lead.scored is published before the worker writes Redis: wait until the stored lead
            # has counted the scan too, or the worker's write lands after ours.
            deadline = asyncio.get_running_loop().time() + 20
            while "lg-scan" not in (state := orjson.loads(await redis.get(key))).get("seen", []):
                assert asyncio.get_running_loop().time() < deadline, "the scan never reached the stored lead"
                await asyncio.sleep(0.1)
            del state["captures"]
            await redis.set(key, orjson.dumps(state))
        finally:
            await redis.aclose()
        done = await leadpipe(env, "scoring", "split", "--lead-id", fay, "--capture-id", "cap-lg-scan")
        assert done.returncode == 0, done.stderr
        cause = split_cause(fay, "cap-lg-scan")
        events = await out.until(lambda xs: sum(x.data.trigger.event_id == cause for x in xs) >= 2)
    split = {e.data.lead_id: e.data for e in events if e.data.trigger.event_id == cause}
    assert split[fay].profile.job_title == "COO"
    [off] = [s for lid, s in split.items() if lid != fay]
    assert off.profile.job_title == "Intern" and off.profile.email is None
