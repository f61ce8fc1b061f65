"""``leadpipe scoring rescore`` as a process, beside a running worker, on the real broker and Redis."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from leadpipe.devstack.processes import free_port
from services.scoring.handlers import output_id
from services.scoring.rescore import RESCORE_EVENT_TYPE
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


async def leadpipe(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "leadpipe.cli", *args]
    return await asyncio.to_thread(
        subprocess.run, cmd, env=os.environ | env, cwd=REPO, capture_output=True, text=True, timeout=120
    )


def report(done: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout))


async def test_rescore_publishes_only_changed_leads_and_switches_the_running_worker(
    kafka_bootstrap: str, redis_url: str, unique: str, tmp_path: Path
):
    t = Topics(f"cap-{unique}", f"eng-{unique}", f"scored-{unique}")
    await create_topics(kafka_bootstrap, t.all)
    proc, port = worker(kafka_bootstrap, redis_url, unique, t, tmp_path)
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap, "REDIS_URL": redis_url,
        "SCORING_REDIS_PREFIX": f"scoring:{unique}:", "SCORING_OUTPUT_TOPIC": t.scored,
        "SCORING_STATE_TOPIC": t.state,
    }  # fmt: skip
    rescore = ("scoring", "rescore", "--model", "fit-2026.2", "--json", "--no-progress")
    try:
        await wait_ready(port)
        served = capture_event("dana@example.com", id="r-dana")  # US: inside the served area
        outside = capture_event("rui@example.com", id="r-rui", person={"job_title": "Director", "country": "BR"})
        canary = capture_event("probe-1@canary.leadpipe.invalid", id="r-canary", synthetic=True)
        async with Reader(kafka_bootstrap, t.scored) as out:
            await produce(kafka_bootstrap, [(t.captured, served), (t.captured, outside), (t.captured, canary)])
            first = await out.until(lambda xs: len(xs) >= 3)
            dana = next(e.data for e in first if e.data.trigger.event_id == "r-dana")
            assert {e.data.model_version for e in first} == {"fit-2026.1"}

            dry = report(await leadpipe(env, *rescore, "--dry-run"))
            assert (dry["leads"], dry["skipped"], dry["changed"], dry["published"]) == (3, 1, 1, 0)

            unreachable = await leadpipe(env, *rescore, "--bootstrap", f"127.0.0.1:{free_port()}")
            assert unreachable.returncode == 3 and "Kafka at 127.0.0.1:" in unreachable.stderr
            redis = Redis.from_url(redis_url)
            try:  # neither run switched the model
                assert await redis.get(f"scoring:{unique}:model") is None
            finally:
                await redis.aclose()

            done = report(await leadpipe(env, *rescore))
            assert (done["changed"], done["published"], done["previous_version"]) == (1, 1, None)
            events = await out.until(lambda xs: any(x.data.trigger.event_type == RESCORE_EVENT_TYPE for x in xs))
            [rescored] = [e for e in events if e.data.trigger.event_type == RESCORE_EVENT_TYPE]
            assert rescored.data.lead_id == dana.lead_id and rescored.data.model_version == "fit-2026.2"
            assert rescored.data.trigger.event_id == done["cause_id"]
            assert rescored.id == output_id(done["cause_id"], dana.lead_id, "fit-2026.2")
            assert rescored.data.score == pytest.approx(dana.score + 10)
            assert {r.rule_id: r.points for r in rescored.data.reasons}["region.served"] == 20

            # The running worker now scores new events with the active version.
            await produce(kafka_bootstrap, [(t.captured, capture_event("lee@example.com", id="r-lee"))])
            events = await out.until(lambda xs: any(x.data.trigger.event_id == "r-lee" for x in xs))
            assert next(e for e in events if e.data.trigger.event_id == "r-lee").data.model_version == "fit-2026.2"

            again = report(await leadpipe(env, *rescore))
            assert (again["leads"], again["changed"], again["published"]) == (4, 0, 0)
            assert again["previous_version"] == "fit-2026.2"
            active = await leadpipe(env, "scoring", "model")
            assert "active: fit-2026.2" in active.stdout
    finally:
        proc.stop()
