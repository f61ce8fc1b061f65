"""A form posted to the containerised ingest reaches a sales rep as an alert: the whole compose
stack (three KRaft brokers, Redis, two replicas of each service) in podman."""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx
import orjson
import pytest

from tests.containers.conftest import ContainerStack

pytestmark = [pytest.mark.containers, pytest.mark.slow]


def sends(stack: ContainerStack) -> list[dict[str, Any]]:
    path = stack.outbox / "outbox.jsonl"
    if not path.exists():
        return []
    return [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]


def test_a_demo_form_posted_to_the_containerised_ingest_becomes_a_rep_alert(container_stack: ContainerStack):
    stack = container_stack
    run = uuid.uuid4().hex[:6]
    email = f"dana.whitfield.{run}@mapleanalytics.com"
    base = stack.url("ingest", 2, 8080)
    posted = time.monotonic()
    # As a browser on the public site posts it (the form's allowed origin is the public URL).
    page = httpx.post(
        base + "/v1/forms/demo",
        data={"email": email, "phone": "+1 212 555 0101", "first_name": "Dana", "last_name": f"Whitfield{run}",
              "company": "Maple Analytics", "job_title": "Director of Operations", "country": "US", "seats": "40",
              "need": "Replace our spreadsheet lead tracking", "timeline": "this quarter", "website": ""},
        headers={"Origin": "http://localhost:8080", "Referer": "http://localhost:8080/"},
        timeout=30.0,
    )  # fmt: skip
    assert page.status_code == 303, page.text

    def rep_alert() -> dict[str, Any] | None:
        return next(
            (s for s in sends(stack) if s["audience"] == "rep" and str(s["notification_id"]).startswith("alert:")
             and f"Whitfield{run}" in str(s.get("subject", ""))),
            None,
        )  # fmt: skip

    while (alert := rep_alert()) is None:
        assert time.monotonic() - posted < 90, f"no rep alert for {email}; outbox: {sends(stack)[-5:]}"
        time.sleep(0.5)
    assert alert["subject"].startswith("New grade A lead: Dana"), alert
    print(f"\nform post -> rep alert in the outbox: {time.monotonic() - posted:.1f}s")
