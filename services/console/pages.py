"""The console's pages: sign-in, a rep's leads, a lead, the manager's team view. Server-rendered;
every check of who may see or do what happens here, on the server."""

from __future__ import annotations

import hmac
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape

from schemas.envelope import Envelope
from schemas.links import InvalidToken, sign, verify
from services.console.config import ConsoleSettings
from services.console.domain import reporting
from services.console.domain.access import User, can_see, check_password
from services.console.domain.projection import OUTCOMES, LeadRow, sla_seconds_left, work_order
from services.console.domain.throttle import LoginThrottle
from services.console.handlers import assignment_response, outcome_event

SESSION_COOKIE = "console_session"
LOGIN_COOKIE = "console_login"
_templates = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"), autoescape=select_autoescape(["html"])
)
#: Outcomes offered in the form (each published as an event nurture acts on).
LOGGABLE = OUTCOMES


class ReadModel(Protocol):
    """What the pages read (PostgreSQL in production, a fake in tests)."""

    async def leads_of(self, rep_id: str) -> list[LeadRow]: ...
    async def lead(self, lead_id: str) -> LeadRow | None: ...
    async def all_leads(self) -> list[LeadRow]: ...
    async def timeline(self, lead_id: str) -> list[dict[str, Any]]: ...
    async def lead_with_timeline(self, lead_id: str) -> tuple[LeadRow | None, list[dict[str, Any]]]:
        """The row and the timeline as of one moment."""
        ...


@dataclass
class PageDeps:
    settings: ConsoleSettings
    store: ReadModel
    users: dict[str, User]
    publish: Callable[[Envelope[Any]], Awaitable[None]]
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    #: Seconds for the sign-in throttle's window (monotonic: a wall-clock jump frees nobody).
    ticks: Callable[[], float] = time.monotonic


def _page(template: str, status: int = 200, **context: Any) -> HTMLResponse:
    return HTMLResponse(_templates.get_template(template).render(**context), status_code=status)


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    sign_ = "-" if seconds < 0 else ""
    if abs(seconds) < 60:
        return f"{sign_}{abs(seconds):.1f}s"
    s = int(abs(seconds))
    if s >= 3600:
        return f"{sign_}{s // 3600}h{(s % 3600) // 60:02d}m"
    return f"{sign_}{s // 60}m{s % 60:02d}s"


_templates.filters["duration"] = _duration
_templates.filters["when"] = lambda d: d.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S") if d else "-"


def client_address(request: Request, trusted_hops: int) -> str:
    """The caller's address: the peer's, or behind ``trusted_hops`` proxies the address the
    outermost of them saw (X-Forwarded-For's entries left of that are the client's to forge)."""
    peer = request.client.host if request.client else "-"
    if trusted_hops == 0:
        return peer
    hops = [h.strip() for h in request.headers.get("x-forwarded-for", "").split(",") if h.strip()]
    return hops[-trusted_hops] if len(hops) >= trusted_hops else (hops[0] if hops else peer)


def build_router(deps: PageDeps) -> APIRouter:
    router = APIRouter()
    settings = deps.settings
    throttle = LoginThrottle(
        settings.console_login_failures_per_account,
        settings.console_login_failures_per_address,
        settings.console_login_window_s,
    )

    def current(request: Request) -> tuple[User, str] | None:
        token = request.cookies.get(SESSION_COOKIE)
        if not token:
            return None
        try:
            claims = verify(settings.console_session_secret, token, "console_session")
        except InvalidToken:
            return None
        user = deps.users.get(str(claims.get("uid")))
        return (user, str(claims["csrf"])) if user else None

    async def form_of(request: Request, csrf: str) -> dict[str, str] | None:
        form = await request.form()
        sent = str(form.get("csrf", ""))
        if not sent or not hmac.compare_digest(sent, csrf):
            return None
        return {k: str(v) for k, v in form.items()}

    def forbidden() -> HTMLResponse:
        return _page("message.html", 403, title="Form expired", message="Reload the page and try again.")

    def not_found() -> HTMLResponse:
        return _page("message.html", 404, title="Not found", message="No such lead in your list.")

    def to_login() -> RedirectResponse:
        return RedirectResponse("/login", status_code=303)

    @router.get("/login")
    async def login_page(request: Request) -> Response:
        nonce = request.cookies.get(LOGIN_COOKIE) or secrets.token_urlsafe(24)
        resp = _page("login.html", csrf=nonce, error=None)
        resp.set_cookie(LOGIN_COOKIE, nonce, httponly=True, samesite="strict", secure=settings.console_cookie_secure)
        return resp

    @router.post("/login")
    async def login(request: Request) -> Response:
        nonce = request.cookies.get(LOGIN_COOKIE, "")
        form = await form_of(request, nonce) if nonce else None
        if form is None:
            return forbidden()
        account, address = form.get("user", "").strip(), client_address(request, settings.console_trusted_proxy_hops)
        blocked = throttle.check(account, address, deps.ticks())
        if blocked is not None:
            per = "this user" if blocked.limit == "account" else "your address"
            error = f"Too many failed sign-ins for {per}: try again in {blocked.retry_after_s} s."
            refused = _page("login.html", 429, csrf=nonce, error=error)
            refused.headers["Retry-After"] = str(blocked.retry_after_s)
            return refused
        user = deps.users.get(account)
        hashes = settings.console_password_hashes
        # An unknown user costs the same hashing as a known one (no timing oracle for user ids).
        stored = hashes.get(user.id if user else "*", hashes.get("*", "")) or hashes.get("*", "")
        if not check_password(form.get("password", ""), stored) or user is None:
            throttle.failed(account, address, deps.ticks())
            return _page("login.html", 401, csrf=nonce, error="Unknown user or wrong password.")
        throttle.succeeded(account)
        claims = {"uid": user.id, "csrf": secrets.token_urlsafe(24)}
        token = sign(settings.console_session_secret, "console_session", claims, settings.console_session_ttl_s)
        resp = RedirectResponse("/", status_code=303)
        resp.set_cookie(
            SESSION_COOKIE,
            token,
            max_age=settings.console_session_ttl_s,
            httponly=True,
            samesite="lax",
            secure=settings.console_cookie_secure,
        )
        resp.delete_cookie(LOGIN_COOKIE)
        return resp

    @router.post("/logout")
    async def logout(request: Request) -> Response:
        who = current(request)
        if who is not None and await form_of(request, who[1]) is None:
            return forbidden()
        resp = to_login()
        resp.delete_cookie(SESSION_COOKIE)
        return resp

    @router.get("/")
    async def home(request: Request) -> Response:
        who = current(request)
        if who is None:
            return to_login()
        return RedirectResponse("/leads" if who[0].role == "rep" else "/team", status_code=303)

    @router.get("/leads")
    async def my_leads(request: Request) -> Response:
        who = current(request)
        if who is None:
            return to_login()
        user, csrf = who
        if user.role != "rep":
            return RedirectResponse("/team", status_code=303)
        now = deps.clock()
        leads = sorted(await deps.store.leads_of(user.id), key=lambda r: work_order(r, now))
        rows = [(lead, sla_seconds_left(lead, now)) for lead in leads]
        return _page("leads.html", user=user, csrf=csrf, rows=rows, now=now)

    async def visible_lead(user: User, lead_id: str) -> LeadRow | None:
        lead = await deps.store.lead(lead_id)
        return lead if lead is not None and can_see(user, lead) else None

    @router.get("/leads/{lead_id}")
    async def lead_page(request: Request, lead_id: str) -> Response:
        who = current(request)
        if who is None:
            return to_login()
        user, csrf = who
        lead, timeline = await deps.store.lead_with_timeline(lead_id)
        if lead is None or not can_see(user, lead):
            return not_found()
        now = deps.clock()
        return _page(
            "lead.html",
            user=user,
            csrf=csrf,
            lead=lead,
            sla=sla_seconds_left(lead, now),
            timeline=timeline,
            outcomes=LOGGABLE,
            flash=request.query_params.get("done"),
            now=now,
        )

    @router.post("/leads/{lead_id}/{action}")
    async def act(request: Request, lead_id: str, action: str) -> Response:
        who = current(request)
        if who is None:
            return to_login()
        user, csrf = who
        form = await form_of(request, csrf)
        if form is None:
            return forbidden()
        lead = await visible_lead(user, lead_id)
        if lead is None or user.role != "rep":
            return not_found()
        now = deps.clock()
        if action in ("accept", "decline"):
            if lead.assignment_status != "pending":
                return _page("message.html", 409, title="Already answered", message="This assignment is answered.")
            await deps.publish(assignment_response(lead, user.id, action == "accept", now, form.get("note")))
            done = "accepted" if action == "accept" else "declined"
        elif action == "outcome":
            outcome = form.get("outcome", "")
            if outcome not in LOGGABLE:
                return _page("message.html", 422, title="Unknown outcome", message=f"outcome: choose one of {LOGGABLE}")
            try:
                await deps.publish(outcome_event(lead, user.id, outcome, now, form.get("note")))
            except ValueError as exc:
                return _page("message.html", 422, title="Cannot log", message=str(exc))
            done = outcome
        else:
            return not_found()
        return RedirectResponse(f"/leads/{lead_id}?done={done}", status_code=303)

    @router.get("/team")
    async def team(request: Request) -> Response:
        who = current(request)
        if who is None:
            return to_login()
        user, csrf = who
        if user.role != "manager":
            return _page("message.html", 403, title="Managers only", message="This page is for sales managers.")
        now = deps.clock()
        leads = [lead for lead in await deps.store.all_leads() if can_see(user, lead)]
        return _page(
            "team.html",
            user=user,
            csrf=csrf,
            total=len(leads),
            queue=reporting.queue(leads),
            funnel=reporting.funnel(leads),
            speed=reporting.speed_to_lead(leads),
            breaches=reporting.breaches(leads, now),
            core=[lead for lead in leads if lead.core_account],
            giving_up=reporting.about_to_give_up(leads, settings.console_give_up_after_touches),
            give_up_after=settings.console_give_up_after_touches,
            now=now,
        )

    return router
