"""In-process: CPU per form post through the real form route, an older ``forms.py`` (its checks as
five dependencies) against this tree's (one), with the store and publish faked (no I/O): what
FastAPI's dependency resolution costs per post. Run from the repository's root::

    git worktree add /tmp/old 0cef37f   # a commit before the change
    .venv/bin/python bench/results/issue13-round14/form_deps.py /tmp/old/services/ingest/routes/forms.py
"""

from __future__ import annotations

import asyncio
import importlib.util
import sys
import time
import types
from datetime import UTC, datetime
from typing import Any

import orjson
from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from bench.raw_chain import demo_form, form_body
from services.ingest.adapters.metrics import IngestMetrics
from services.ingest.adapters.publisher import Outcome
from services.ingest.config import IngestSettings


def load(path: str, name: str) -> Any:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


class Store:
    async def hit(self, limits: Any) -> bool:
        return True


async def fake_publish(deps: Any, items: Any, source: str) -> tuple[list[str], list[Outcome]]:
    return ["e1"], [next(iter(Outcome))]


def app_for(module: Any) -> tuple[FastAPI, str]:
    module.publish = fake_publish
    app = FastAPI()
    app.include_router(module.router)
    form = demo_form()
    app.state.deps = types.SimpleNamespace(
        settings=IngestSettings(kafka_bootstrap_servers="x:1", redis_url="redis://x"),
        store=Store(),
        metrics=IngestMetrics(CollectorRegistry()),
        forms={form.id: form},
        clock=lambda: datetime.now(UTC),
    )
    return app, form.id


async def post(app: FastAPI, form_id: str, body: bytes) -> int:
    sent: list[dict[str, Any]] = []
    messages = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive() -> dict[str, Any]:
        return messages.pop() if messages else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    path = f"/v1/forms/{form_id}"
    headers = [(b"content-type", b"application/json"), (b"host", b"test"), (b"content-length", str(len(body)).encode())]
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
        "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "", "headers": headers,
        "client": ("127.0.0.1", 1), "server": ("test", 80), "app": app,
    }  # fmt: skip
    await app(scope, receive, send)
    return int(sent[0]["status"])


async def main(old_path: str) -> None:
    apps = {
        "old": app_for(load(old_path, "old_forms")),
        "new": app_for(load("services/ingest/routes/forms.py", "new_forms")),
    }
    bodies = [orjson.dumps(form_body(i, "x")) for i in range(4000)]
    for app, form_id in apps.values():
        for body in bodies[:200]:  # warm up
            assert await post(app, form_id, body) == 202
    results: dict[str, list[float]] = {"old": [], "new": []}
    for round_ in range(6):
        for name in ("old", "new") if round_ % 2 == 0 else ("new", "old"):
            app, form_id = apps[name]
            start = time.thread_time()
            for body in bodies:
                await post(app, form_id, body)
            results[name].append((time.thread_time() - start) / len(bodies) * 1e6)
    for name, runs in results.items():
        print(f"{name}: {[round(r) for r in runs]} us of CPU per post, median {round(sorted(runs)[len(runs) // 2])}")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
