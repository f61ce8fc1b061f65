"""The journeys' stack: started once per module (broker, Redis, the four services, an SMTP server)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
import pytest

from leadpipe.devstack.processes import free_port
from leadpipe.devstack.stack import PIPELINE, Stack
from tests.e2e.harness import (
    SLA_S,
    Journey,
    TopicTail,
    Window,
    smtp_server,
    wait_ready,
    write_playbooks,
    write_sales_team,
)


def journey_window(now: datetime) -> Window:
    """09:00-18:00 on every day but one: the day after today in Paris (where the booth show is),
    so the booth journey's "next working morning" skips a closed day whatever day the suite runs,
    and somewhere on Earth a lead is inside the window right now."""
    closed = ((now - timedelta(hours=3)).astimezone(ZoneInfo("Europe/Paris")).weekday() + 1) % 7
    return Window(frozenset(d for d in range(7) if d != closed))


@pytest.fixture(scope="module")
def journey(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Journey]:
    root = tmp_path_factory.mktemp("journeys")
    window = journey_window(datetime.now(UTC))
    smtp_port = free_port()
    env = {
        "NURTURE_PLAYBOOKS_PATH": str(write_playbooks(root / "playbooks.yaml", window)),
        "NURTURE_DIRECTORY_PATH": str(write_sales_team(root / "sales_team.yaml")),
        "NURTURE_SLA_SECONDS": str(SLA_S),
        "NOTIFIER_EMAIL_TRANSPORT": "smtp",
        "NOTIFIER_SMTP_HOST": "127.0.0.1",
        "NOTIFIER_SMTP_PORT": str(smtp_port),
    }
    with (
        smtp_server(smtp_port) as inbox,
        # LEADPIPE_TEST_BROKERS=3: the journeys on a local three-node cluster.
        Stack(
            root / "stack",
            services=list(PIPELINE),
            ports="free",
            env=env,
            brokers=int(os.environ.get("LEADPIPE_TEST_BROKERS", "1")),
        ) as stack,  # fmt: skip
        httpx.Client(timeout=30) as http,
    ):
        tail = TopicTail(stack.bootstrap, stack.redis_url).start()
        try:
            wait_ready(stack, http, PIPELINE)
            yield Journey(stack, inbox, tail, window, http, run=uuid.uuid4().hex[:6])
        finally:
            tail.stop()
