"""The console's pages with a fake read model: sign-in, CSRF, expiry and who may see what."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest_asyncio
from fastapi import FastAPI

from schemas.envelope import Envelope
from schemas.links import sign
from services.console.config import ConsoleSettings
from services.console.domain.access import User, hash_password
from services.console.domain.projection import LeadRow
from services.console.pages import SESSION_COOKIE, PageDeps, build_router

NOW = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
ANA_LEAD = LeadRow(
    "L-ana", name="Jo", email="jo@acme.test", grade="A", rep_id="rep-ana", assignment_id="a1",
    assignment_status="pending", accept_by=NOW + timedelta(minutes=9), team="amer",
    next_touch_at=NOW + timedelta(days=1, hours=-1),
)  # fmt: skip
BEN_LEAD = LeadRow("L-ben", name="Kim", rep_id="rep-ben", assignment_id="a2", assignment_status="pending", team="amer")


class FakeReadModel:
    def __init__(self, *leads: LeadRow) -> None:
        self.leads = {lead.lead_id: lead for lead in leads}

    async def leads_of(self, rep_id: str) -> list[LeadRow]:
        return [lead for lead in self.leads.values() if lead.rep_id == rep_id]

    async def lead(self, lead_id: str) -> LeadRow | None:
        return self.leads.get(lead_id)

    async def all_leads(self) -> list[LeadRow]:
        return list(self.leads.values())

    async def timeline(self, lead_id: str) -> list[dict[str, Any]]:
        return [{"time": NOW, "type": "lead.assigned", "summary": "assigned to Ana by territory"}]

    async def lead_with_timeline(self, lead_id: str) -> tuple[LeadRow | None, list[dict[str, Any]]]:
        return await self.lead(lead_id), await self.timeline(lead_id)


@pytest_asyncio.fixture
async def console() -> AsyncIterator[tuple[httpx.AsyncClient, list[Envelope[Any]], ConsoleSettings]]:
    settings = ConsoleSettings(
        kafka_bootstrap_servers="unused:9092",
        redis_url="redis://unused",
        database_url="postgresql://unused",
        console_password_hashes={"*": hash_password("pw", iterations=1000)},
    )
    users = {
        "rep-ana": User("rep-ana", "Ana", "rep", ("amer",)),
        "rep-ben": User("rep-ben", "Ben", "rep", ("amer",)),
        "mgr-amer": User("mgr-amer", "Riley", "manager", ("amer",)),
    }
    published: list[Envelope[Any]] = []

    async def publish(event: Envelope[Any]) -> None:
        published.append(event)

    app = FastAPI()
    app.include_router(build_router(PageDeps(settings, FakeReadModel(ANA_LEAD, BEN_LEAD), users, publish, lambda: NOW)))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://console.test") as client:
        yield client, published, settings


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, html
    return found.group(1)


async def sign_in(client: httpx.AsyncClient, user: str, password: str = "pw") -> str:
    token = csrf_of((await client.get("/login")).text)
    resp = await client.post("/login", data={"csrf": token, "user": user, "password": password}, follow_redirects=False)
    assert resp.status_code == 303, resp.text
    return csrf_of((await client.get("/leads" if user.startswith("rep") else "/team")).text)


async def test_pages_need_a_session(console: Any) -> None:
    client, _, _ = console
    resp = await client.get("/leads", follow_redirects=False)
    assert (resp.status_code, resp.headers["location"]) == (303, "/login")


async def test_sign_in_needs_the_forms_csrf_token_and_the_right_password(console: Any) -> None:
    client, _, _ = console
    await client.get("/login")
    assert (
        await client.post("/login", data={"csrf": "forged", "user": "rep-ana", "password": "pw"})
    ).status_code == 403
    token = csrf_of((await client.get("/login")).text)
    assert (await client.post("/login", data={"csrf": token, "user": "rep-ana", "password": "nope"})).status_code == 401


async def test_a_rep_sees_only_their_own_leads_and_another_reps_lead_is_a_404(console: Any) -> None:
    client, published, _ = console
    csrf = await sign_in(client, "rep-ana")
    page = (await client.get("/leads")).text
    assert "L-ana" in page and "L-ben" not in page
    assert (await client.get("/leads/L-ana")).status_code == 200
    assert (await client.get("/leads/L-ben")).status_code == 404
    assert (await client.post("/leads/L-ben/accept", data={"csrf": csrf})).status_code == 404
    assert published == []


async def test_accepting_publishes_the_assignment_response_and_needs_csrf(console: Any) -> None:
    client, published, _ = console
    csrf = await sign_in(client, "rep-ana")
    assert (await client.post("/leads/L-ana/accept", data={"csrf": "forged"})).status_code == 403
    assert published == []
    resp = await client.post("/leads/L-ana/accept", data={"csrf": csrf}, follow_redirects=False)
    assert resp.status_code == 303
    [event] = published
    assert (event.type, event.data.assignment_id, event.data.rep_id, event.data.response) == (
        "dev.leadpipe.assignment.response", "a1", "rep-ana", "accepted",
    )  # fmt: skip


async def test_a_logged_meeting_is_published_as_the_engagement_nurture_acts_on(console: Any) -> None:
    client, published, _ = console
    csrf = await sign_in(client, "rep-ana")
    await client.post("/leads/L-ana/outcome", data={"csrf": csrf, "outcome": "meeting_booked", "note": "Tue"})
    [event] = published
    assert (event.data.kind.value, event.data.provider, event.data.identity.email) == (
        "meeting_booked", "console", "jo@acme.test",
    )  # fmt: skip
    assert (await client.post("/leads/L-ana/outcome", data={"csrf": csrf, "outcome": "teleported"})).status_code == 422


async def test_the_rep_sees_when_the_cadence_next_touches_each_lead(console: Any) -> None:
    client, _, _ = console
    await sign_in(client, "rep-ana")
    assert '<td class="next-touch">2026-11-27 09:00:00</td>' in (await client.get("/leads")).text
    assert '<span id="next-touch">2026-11-27 09:00:00</span>' in (await client.get("/leads/L-ana")).text


async def test_an_expired_session_signs_out(console: Any) -> None:
    client, _, settings = console
    stale = sign(settings.console_session_secret, "console_session", {"uid": "rep-ana", "csrf": "x"}, ttl_s=-1)
    client.cookies.set(SESSION_COOKIE, stale)
    resp = await client.get("/leads", follow_redirects=False)
    assert (resp.status_code, resp.headers["location"]) == (303, "/login")


async def test_a_manager_sees_the_team_page_and_a_rep_does_not(console: Any) -> None:
    client, _, _ = console
    await sign_in(client, "mgr-amer")
    page = (await client.get("/team")).text
    assert "Speed to lead" in page and 'id="funnel-grade"' in page
    client.cookies.clear()
    await sign_in(client, "rep-ben")
    assert (await client.get("/team")).status_code == 403


async def test_a_lost_deal_is_published_as_the_reps_verdict_for_nurture(console: Any) -> None:
    client, published, _ = console
    csrf = await sign_in(client, "rep-ana")
    await client.post("/leads/L-ana/outcome", data={"csrf": csrf, "outcome": "lost", "note": "chose a competitor"})
    [event] = published
    assert (event.type, event.subject, event.data.outcome, event.data.rep_id, event.data.note) == (
        "dev.leadpipe.lead.outcome_logged", "L-ana", "lost", "rep-ana", "chose a competitor",
    )  # fmt: skip


async def test_failed_sign_ins_for_one_account_get_a_429_with_retry_after_until_the_window_passes() -> None:
    settings = ConsoleSettings(
        kafka_bootstrap_servers="unused:9092", redis_url="redis://unused", database_url="postgresql://unused",
        console_password_hashes={"*": hash_password("pw", iterations=1000)},
        console_login_failures_per_account=2, console_login_failures_per_address=3, console_login_window_s=60,
    )  # fmt: skip
    users = {u: User(u, u, "rep", ("amer",)) for u in ("rep-ana", "rep-ben", "rep-cy")}
    ticks = [1000.0]
    deps = PageDeps(settings, FakeReadModel(ANA_LEAD), users, lambda e: None, lambda: NOW, ticks=lambda: ticks[0])  # type: ignore[arg-type,return-value]
    app = FastAPI()
    app.include_router(build_router(deps))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://console.test") as client:

        async def attempt(user: str, password: str) -> httpx.Response:
            token = csrf_of((await client.get("/login")).text)
            return await client.post("/login", data={"csrf": token, "user": user, "password": password})

        assert [(await attempt("rep-ana", "nope")).status_code for _ in range(2)] == [401, 401]
        ticks[0] += 10
        blocked = await attempt("rep-ana", "pw")  # even the right password waits
        assert (blocked.status_code, blocked.headers["retry-after"]) == (429, "50")
        assert "Too many failed sign-ins for this user" in blocked.text
        assert (await attempt("rep-ben", "nope")).status_code == 401  # third failure from this address
        by_address = await attempt("rep-cy", "pw")
        assert (by_address.status_code, by_address.headers["retry-after"]) == (429, "50")
        assert "your address" in by_address.text
        ticks[0] += 51
        assert (await attempt("rep-ana", "pw")).status_code == 303


def test_the_throttles_client_address_is_the_one_the_trusted_proxy_saw() -> None:
    from starlette.requests import Request

    from services.console.pages import client_address

    def request(forwarded: str | None) -> Request:
        headers = [(b"x-forwarded-for", forwarded.encode())] if forwarded is not None else []
        return Request({"type": "http", "headers": headers, "client": ("10.1.1.1", 5000)})

    assert client_address(request("6.6.6.6, 203.0.113.7"), 0) == "10.1.1.1"
    assert client_address(request("6.6.6.6, 203.0.113.7"), 1) == "203.0.113.7"  # the forged 6.6.6.6 is ignored
    assert client_address(request("203.0.113.7, 10.2.2.2"), 2) == "203.0.113.7"
    assert client_address(request(None), 1) == "10.1.1.1"
