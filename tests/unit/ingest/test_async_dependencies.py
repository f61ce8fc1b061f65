"""Every route of ingest and every dependency it resolves is a coroutine: FastAPI runs a plain
``def`` one in its thread pool, a thread hop per call per request (four of them were 15 % of
ingest's CPU under load, issue #13)."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from typing import Any

from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from services.ingest.app import ROUTERS


def _is_coroutine(call: Callable[..., Any]) -> bool:
    if inspect.iscoroutinefunction(call):
        return True
    if inspect.isroutine(call) or inspect.isclass(call):
        return False
    return inspect.iscoroutinefunction(type(call).__call__)  # a callable object: its class's __call__


def _calls(dependant: Dependant) -> Iterator[Callable[..., Any]]:
    for sub in dependant.dependencies:
        if sub.call is not None:
            yield sub.call
        yield from _calls(sub)


def _routes() -> list[APIRoute]:
    return [route for router in ROUTERS for route in router.routes if isinstance(route, APIRoute)]


def test_every_endpoint_and_every_dependency_is_async() -> None:
    routes = _routes()
    assert len(routes) > 10  # the form, scan, webhook, link, privacy, page and ops routes
    sync = [
        f"{route.path}: {getattr(call, '__qualname__', type(call).__qualname__)}"
        for route in routes
        for call in [route.endpoint, *_calls(route.dependant)]
        if not _is_coroutine(call)
    ]
    assert sync == []


def test_the_check_tells_a_plain_function_and_a_sync_callable_object_from_async_ones() -> None:
    def plain() -> None: ...

    async def coroutine() -> None: ...

    class SyncCall:
        def __call__(self) -> None: ...

    class AsyncCall:
        async def __call__(self) -> None: ...

    assert [_is_coroutine(c) for c in (plain, coroutine, SyncCall(), AsyncCall())] == [False, True, False, True]
