"""The chaos suite: a real stack under a steady load of web-form leads and engagement webhooks
while each service is killed with SIGKILL and restarted, the broker is stopped and started,
Redis is restarted, the whole stack is stopped (SIGTERM) and crashed (SIGKILL) and started
again, and, on a three-broker cluster, the busiest leader is killed and every broker restarted
in turn; then the audit (``tests.chaos.audit``) must pass: every accepted capture has exactly
one current ``lead.scored``, every sales-ready lead is routed and its rep alerted, every due
touch requested, no notification went out twice, nothing valid was lost or dead-lettered.

CI runs the short versions (each fault once). The long version runs
``LEADPIPE_CHAOS_ROUNDS`` rounds (default 3 with ``LEADPIPE_CHAOS_LONG=1``, as ``make chaos``
does) of the same faults in a random order (``LEADPIPE_CHAOS_SEED``), with Redis wiped
(``LEADPIPE_CHAOS_WIPE=0`` keeps its data); ``python -m tests.chaos run --help`` is the same
outside pytest. ``LEADPIPE_CHAOS_STATE_DIR`` keeps each run's logs and audit dump.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from tests.chaos.scenario import cluster_plan, long_plan, run, short_plan

ROUNDS = int(os.environ.get("LEADPIPE_CHAOS_ROUNDS") or (3 if os.environ.get("LEADPIPE_CHAOS_LONG") else 0))
SEED = int(os.environ.get("LEADPIPE_CHAOS_SEED") or random.randrange(1_000_000))
WIPE = os.environ.get("LEADPIPE_CHAOS_WIPE", "1") != "0"

pytestmark = [pytest.mark.chaos, pytest.mark.slow]


def _state(tmp_path: Path, name: str) -> Path:
    # LEADPIPE_CHAOS_STATE_DIR keeps logs and the audit dump where pytest will not rotate them away.
    root = Path(os.environ["LEADPIPE_CHAOS_STATE_DIR"]) if os.environ.get("LEADPIPE_CHAOS_STATE_DIR") else tmp_path
    return root / f"{name}-{SEED}"


@pytest.mark.timeout(420)
def test_every_promise_holds_when_the_busiest_broker_of_three_is_killed_and_all_are_restarted_in_turn(
    tmp_path: Path,
):
    plan = cluster_plan()
    print(f"chaos plan, 3 brokers (seed {SEED}): " + ", ".join(map(str, plan)))
    state = _state(tmp_path, "cluster")
    outcome = run(state / "stack", plan, seed=SEED, settle_s=90.0, brokers=3)
    print(f"timings: { {k: round(v, 1) for k, v in outcome.timings.items()} }")
    report = outcome.report
    assert report.ok, report.summary(limit=10) + f"\nstack state and logs: {state / 'stack'}"
    assert report.stats["accepted_captures"] >= 40
    assert report.stats["notifications_sent"] > 0


@pytest.mark.timeout(420 + 240 * ROUNDS)
def test_every_promise_holds_through_kill_9s_broker_and_stack_restarts_and_a_host_crash(tmp_path: Path):
    plan = long_plan(ROUNDS, SEED, wipe=WIPE) if ROUNDS else short_plan()
    print(f"chaos plan (seed {SEED}): " + ", ".join(map(str, plan)))
    state = _state(tmp_path, "run")
    outcome = run(state / "stack", plan, seed=SEED, settle_s=90.0 + 30.0 * ROUNDS)
    print(f"timings: { {k: round(v, 1) for k, v in outcome.timings.items()} }")
    report = outcome.report
    assert report.ok, report.summary(limit=10) + f"\nstack state and logs: {state / 'stack'}"
    # The faults really happened mid-stream: leads kept coming, ingest spooled while the broker
    # was down and refused connections while it was dead, and the pipeline ran to the end.
    assert report.stats["accepted_captures"] >= 100
    assert outcome.stats.delivery["spooled"] > 0, outcome.stats
    assert outcome.stats.statuses["conn"] > 0, outcome.stats
    assert report.stats["notifications_sent"] > 0
