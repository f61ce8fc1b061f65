"""The demo pages: the landing form, one page per configured form, the thank-you page."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from services.ingest import contract
from services.ingest.checks import Deps
from services.ingest.web import page

router = APIRouter(tags=["pages"])


@router.get("/", summary="The demo form", response_class=Response, responses={200: contract.html("The demo form")})
async def landing(deps: Deps) -> Response:
    config = deps.forms.get("demo") or next(iter(deps.forms.values()))
    return page("form.html", title=config.title, form=config, values={}, message=None, problems=[])


@router.get(
    "/forms/{form_id}",
    summary="A configured form as a page",
    response_class=Response,
    responses={200: contract.html("The form"), 404: contract.html("No such form")},
)
async def form_page(form_id: str, deps: Deps) -> Response:
    config = deps.forms.get(form_id)
    if config is None:
        return page("message.html", 404, title="Not found", message="No such form.")
    return page("form.html", title=config.title, form=config, values={}, message=None, problems=[])


@router.get("/thanks", summary="Thank-you page", response_class=Response, responses={200: contract.html("Thanks")})
async def thanks() -> Response:
    return page("message.html", title="Thank you", message="Thanks! We will be in touch shortly.")
