"""The sales console in a real browser, on a real stack (Kafka, Redis, PostgreSQL, the four
services and the console): a rep signs in, sees exactly their own leads (another rep's lead is a
404), accepts one and logs a meeting, and the pipeline stops the cadence; a manager's funnel
matches the events the test produced. ``LEADPIPE_CONSOLE_SCREENSHOTS=<dir>`` saves the pages."""

from __future__ import annotations

import os
import shutil
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any, TypeVar

import httpx
import pytest

from leadpipe.devstack.stack import PIPELINE, Stack
from tests.e2e.harness import TopicTail, write_sales_team

pytestmark = [pytest.mark.browser, pytest.mark.slow]
T = TypeVar("T")
CHROMIUM = "/usr/bin/chromium"
PASSWORD = "leadpipe-dev"  # the console's dev default for every user


def wait(what: str, find: Callable[[], T | None], ok: Callable[[T], bool] = bool, timeout_s: float = 45.0) -> T:
    """``find()`` once ``ok`` of it holds (by default: once it is truthy)."""
    deadline = time.monotonic() + timeout_s
    found = None
    while time.monotonic() < deadline:
        found = find()
        if found is not None and ok(found):
            return found
        time.sleep(0.25)
    raise TimeoutError(f"not seen within {timeout_s}s: {what} (last: {found!r})")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stack, TopicTail]]:
    if not os.path.exists(CHROMIUM):
        pytest.skip("chromium is not installed")
    root = tmp_path_factory.mktemp("console")
    team = write_sales_team(root / "sales_team.yaml")
    env = {
        "NURTURE_DIRECTORY_PATH": str(team),
        "CONSOLE_SALES_TEAM": str(team),
        # The rep takes a few seconds in the browser: the acceptance window must not lapse first.
        "NURTURE_SLA_SECONDS": "600",
    }
    with Stack(root / "stack", services=[*PIPELINE, "console"], ports="free", env=env) as s:
        tail = TopicTail(s.bootstrap, s.redis_url).start()
        try:
            s.wait_ready(timeout_s=120.0)
            yield s, tail
        finally:
            tail.stop()
    data = root / "stack" / "postgres"
    if data.is_symlink():  # the server's data went under /tmp (see start_postgres): do not leave it there
        shutil.rmtree(data.resolve().parent, ignore_errors=True)


def post_lead(s: Stack, run: str, n: int, country: str, phone: str) -> str:
    email = f"director.{n}.{run}@northwind{n}.com"
    form = {
        "email": email, "phone": phone, "first_name": f"Dee{n}", "last_name": "Director", "company": f"Northwind {n}",
        "job_title": "Director of Operations", "country": country, "seats": "40", "need": "Replace spreadsheets",
        "timeline": "this quarter", "marketing_consent": "on", "website": "",
    }  # fmt: skip
    resp = httpx.post(s.url("ingest") + "/v1/forms/demo", data=form, timeout=30)
    assert resp.status_code in (202, 303), resp.text
    return email


def next_touch(tail: TopicTail, lead_id: str) -> str:
    """The next touch nurture last published for the lead, as the console prints it."""
    said = [e for t in ("lead.stage_changed.v1", "notification.requested.v1") for e in tail.events(t, lead_id)]
    if not said:
        return "?"
    at = max(said, key=lambda e: (e.time, e.id)).data.next_touch_at
    if at is None:
        return "-"
    return "due now" if at <= datetime.now(UTC) else at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def latest(tail: TopicTail, topic: str) -> dict[str, Any]:
    """The latest payload per lead on ``topic``."""
    return {e.data.lead_id: e.data for e in tail.events(topic)}


def test_a_rep_works_their_own_leads_and_a_manager_sees_the_funnel(stack: tuple[Stack, TopicTail]) -> None:
    from playwright.sync_api import sync_playwright

    s, tail = stack
    run = uuid.uuid4().hex[:6]
    emails = [
        post_lead(s, run, 1, "US", "+1 212 555 0101"),
        post_lead(s, run, 2, "US", "+1 212 555 0102"),
        post_lead(s, run, 3, "FR", "+33 1 42 68 53 00"),
    ]
    by_email = wait(
        "every lead scored",
        lambda: {e.data.profile.email: e.data.lead_id for e in tail.events("lead.scored.v1")},
        lambda m: all(e in m for e in emails),
    )
    leads = [by_email[e] for e in emails]
    assigned = wait("every lead assigned", lambda: latest(tail, "lead.assigned.v1"), lambda a: set(leads) <= set(a))
    rep = assigned[leads[0]].rep_id
    own = {lid for lid, a in assigned.items() if a.rep_id == rep}
    other = next(lid for lid, a in assigned.items() if a.rep_id != rep)
    shots = os.environ.get("LEADPIPE_CONSOLE_SCREENSHOTS")
    console = s.url("console")

    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-first-run"],
        )  # fmt: skip
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 640})
            page.goto(console + "/leads")
            assert page.url.endswith("/login")
            page.fill("input[name=user]", rep)
            page.fill("input[name=password]", "wrong")
            page.click("button[type=submit]")
            assert "wrong password" in page.inner_text("[role=alert]")
            page.fill("input[name=user]", rep)
            page.fill("input[name=password]", PASSWORD)
            page.click("button[type=submit]")

            def rows() -> set[str]:
                page.goto(console + "/leads")
                return {r.get_attribute("data-lead") or "" for r in page.query_selector_all("#my-leads tr[data-lead]")}

            seen = wait("the rep's leads in the console", rows, lambda r: r == own)
            assert seen == own

            def next_touches() -> dict[str, tuple[str, str]]:
                """Per lead: (the console's next touch, the one nurture last published)."""
                page.goto(console + "/leads")
                cells = {r.get_attribute("data-lead") or "": r.query_selector(".next-touch").inner_text()
                         for r in page.query_selector_all("#my-leads tr[data-lead]")}  # fmt: skip
                return {lid: (shown, next_touch(tail, lid)) for lid, shown in cells.items()}

            touches = wait("each lead's next touch as nurture published it", next_touches,
                           lambda t: all(shown == said for shown, said in t.values()))  # fmt: skip
            assert touches[leads[0]][0] != "?"
            if shots:
                page.screenshot(path=f"{shots}/console-rep-leads.png")
            assert page.goto(console + f"/leads/{other}").status == 404  # another rep's lead
            assert page.goto(console + "/leads/no-such-lead").status == 404

            page.goto(console + f"/leads/{leads[0]}")
            page.click("button:text-is('Accept')")
            assert "Recorded: accepted" in page.inner_text("[role=status]")
            answer = wait(
                "assignment.response from the console",
                lambda: next((e for e in tail.events("assignment.response.v1", leads[0])), None),
            )
            assert (answer.data.rep_id, answer.data.response, answer.source) == (rep, "accepted", "leadpipe/console")

            page.select_option("select[name=outcome]", "meeting_booked")
            page.fill("input[name=note]", "demo on Tuesday")
            page.click("button:text-is('Log outcome')")
            assert "Recorded: meeting_booked" in page.inner_text("[role=status]")
            stop = wait(
                "nurture moves the lead on the meeting",
                lambda: next(
                    (e for e in tail.events("lead.stage_changed.v1", leads[0]) if e.data.reason == "meeting booked"),
                    None,
                ),
            )
            assert stop.data.to_stage.value == "opportunity"
            states = wait(
                "the cadence stopped",
                lambda: [st for st in tail.states(leads[0]) if st.get("cadence_stop_reason") == "meeting booked"],
            )
            assert states and not states[-1].get("cadence_active")

            def timeline() -> str:
                page.goto(console + f"/leads/{leads[0]}")
                return page.inner_text("#timeline")

            text = wait("the console's timeline shows it", timeline, lambda t: "-> opportunity: meeting booked" in t)
            assert "meeting_booked via phone" in text and "-> opportunity: meeting booked" in text
            assert page.inner_text("#stage") == "opportunity"
            assert stop.data.next_touch_at is None and page.inner_text("#next-touch") == "none scheduled"
            if shots:
                page.screenshot(path=f"{shots}/console-rep-lead.png", full_page=False)

            # Later the deal is lost: the rep's verdict is its own event, and nurture recycles the lead.
            page.select_option("select[name=outcome]", "lost")
            page.click("button:text-is('Log outcome')")
            assert "Recorded: lost" in page.inner_text("[role=status]")
            recycled = wait(
                "nurture recycles the lost lead",
                lambda: next(
                    (e for e in tail.events("lead.stage_changed.v1", leads[0]) if e.data.to_stage.value == "recycled"),
                    None,
                ),
            )
            assert recycled.data.reason == f"lost (logged by {rep})"
            wait(
                "the console shows it",
                lambda: page.goto(console + f"/leads/{leads[0]}") and page.inner_text("#stage"),
                lambda t: t == "recycled",
            )

            manager = browser.new_page(viewport={"width": 1100, "height": 900})
            manager.goto(console + "/login")
            manager.fill("input[name=user]", "mgr-amer")
            manager.fill("input[name=password]", PASSWORD)
            manager.click("button[type=submit]")
            assert manager.url.endswith("/team")

            def funnel(dim: str) -> dict[str, int]:
                cells = manager.query_selector_all(f"#funnel-{dim} tr")
                return {
                    c.query_selector_all("td")[0].inner_text(): int(c.query_selector_all("td")[1].inner_text())
                    for c in cells
                }

            def expected() -> tuple[Counter[str], Counter[str]]:
                grades = Counter(p.grade.value for p in latest(tail, "lead.scored.v1").values())
                stages = Counter(p.to_stage.value for p in latest(tail, "lead.stage_changed.v1").values())
                return grades, stages

            def matches() -> bool:
                manager.goto(console + "/team")
                grades, stages = expected()
                return funnel("grade") == dict(grades) and funnel("stage") == dict(stages)

            wait("the manager's funnel matches the events", matches)
            assert sum(funnel("grade").values()) == 3 and funnel("stage").get("recycled") == 1
            if shots:
                manager.screenshot(path=f"{shots}/console-manager.png", full_page=False)
        finally:
            browser.close()
