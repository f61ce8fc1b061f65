"""Signed links followed from messages: a rep accepts or declines an assigned lead
(``assignment.response``), a lead unsubscribes in one click (``lead.engagement``). Answers are
HTML pages; a forged or expired link publishes nothing."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from schemas.assignment_response.v1 import AssignmentResponse
from schemas.links import InvalidToken, verify
from services.ingest import contract
from services.ingest.checks import Deps
from services.ingest.domain.webhooks import unsubscribe_engagement
from services.ingest.publishing import Outgoing, SpoolUnavailable, publish
from services.ingest.web import page

router = APIRouter(tags=["links"])

_BAD_LINK: dict[int | str, dict[str, Any]] = {
    403: contract.html("The link is not valid (forged, or for something else)"),
    410: contract.html("The link has expired"),
    503: contract.html("Could not be recorded; retry"),
}


def token_page(deps: Deps, exc: InvalidToken) -> Response:
    deps.metrics.rejected.labels("bad_token").inc()
    if exc.reason == "expired":
        return page("message.html", 410, title="Link expired", message="This link has expired.")
    return page("message.html", 403, title="Link not valid", message="This link is not valid.")


@router.get(
    "/v1/assignments/{token}/{action}",
    summary="A rep accepts or declines an assigned lead (first answer wins)",
    response_class=Response,
    responses={
        200: contract.html("Answer recorded (or the first answer shown)"),
        404: contract.html("Not accept or decline"),
        **_BAD_LINK,
    },
)
async def assignment(token: str, action: str, deps: Deps) -> Response:
    if action not in ("accept", "decline"):
        return page("message.html", 404, title="Not found", message="Use the accept or decline link.")
    try:
        claims = verify(deps.settings.leadpipe_link_secret, token, "assignment")
    except InvalidToken as exc:
        return token_page(deps, exc)
    response = "accepted" if action == "accept" else "declined"
    aid, lead_id = str(claims["aid"]), str(claims["lid"])
    earlier = await deps.store.first_use("assignment", aid, 30 * 86400, response)
    if earlier is not None:
        return page("message.html", title="Already answered",
                    message=f"You already {earlier} this lead; your first answer stands.")  # fmt: skip
    payload = AssignmentResponse(
        assignment_id=aid, lead_id=lead_id, rep_id=str(claims["rid"]), response=response, responded_at=deps.clock()
    )
    try:
        await publish(deps, [Outgoing(payload, lead_id)], "assignments")
    except SpoolUnavailable:
        await deps.store.forget("assignment", aid)
        return page("message.html", 503, title="Try again", message="We could not record your answer; retry.")
    return page("message.html", title=f"Lead {response}", message=f"Thanks: you {response} this lead.")


@router.get(
    "/v1/unsubscribe/{token}",
    summary="Unsubscribe confirmation page (a GET changes nothing)",
    response_class=Response,
    responses={200: contract.html("Asks to confirm"), **_BAD_LINK},
)
async def unsubscribe_page(token: str, request: Request, deps: Deps) -> Response:
    try:
        verify(deps.settings.leadpipe_link_secret, token, "unsubscribe")
    except InvalidToken as exc:
        return token_page(deps, exc)
    # GET only confirms: mail scanners prefetch links, so only a POST unsubscribes (RFC 8058).
    return page("message.html", title="Unsubscribe", message="Stop all messages to this address?",
                action=str(request.url.path), button="Unsubscribe")  # fmt: skip


@router.post(
    "/v1/unsubscribe/{token}",
    summary="One-click unsubscribe (RFC 8058)",
    response_class=Response,
    responses={200: contract.html("Unsubscribed (once, however often posted)"), **_BAD_LINK},
)
async def unsubscribe(token: str, deps: Deps) -> Response:
    try:
        claims = verify(deps.settings.leadpipe_link_secret, token, "unsubscribe")
    except InvalidToken as exc:
        return token_page(deps, exc)
    engagement = unsubscribe_engagement(claims, now=deps.clock(), method="one-click")
    eid = engagement.payload.engagement_id
    if await deps.store.first_use("unsubscribe", eid, 365 * 86400) is None:
        try:
            await publish(deps, [engagement], "unsubscribe")
        except SpoolUnavailable:
            await deps.store.forget("unsubscribe", eid)
            return page("message.html", 503, title="Try again", message="We could not record this; retry.")
    return page("message.html", title="Unsubscribed", message="You will not receive further messages here.")
