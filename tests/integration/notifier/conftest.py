"""Real servers for the notifier's tests: an aiosmtpd SMTP server that keeps what it receives
(and can answer 4xx/5xx), an aiohttp server standing in for Slack, SMS and webhook providers
(scripted 200 / 429 / 500 / hang), and a Notifier wired to the session Redis."""

from __future__ import annotations

import asyncio
import contextlib
import email
import email.policy
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiosmtpd.controller import Controller
from prometheus_client import CollectorRegistry
from redis.asyncio import Redis

from leadpipe.devstack.processes import free_port
from leadpipe.runtime.metrics import StageMetrics
from leadpipe.runtime.stream import EventProcessor
from schemas.codec import Record
from services.notifier.bootstrap import build_channels, build_notifier
from services.notifier.config import NotifierSettings
from services.notifier.handlers import Notifier
from tests.fakes import FakePublisher


class SmtpInbox:
    """aiosmtpd handler: ``replies`` (e.g. "451 4.3.0 later") answer DATA first, then 250. Tests
    read it while the server thread writes, so a message and its envelope are added together."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.envelopes: list[tuple[str, list[str]]] = []
        self.replies: list[str] = []
        self._lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.replies:
            return self.replies.pop(0)
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self._lock:
            self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
            self.messages.append(message)  # type: ignore[arg-type]
        return "250 2.0.0 queued"

    def to(self, address: str) -> list[EmailMessage]:
        with self._lock:
            return [m for m, (_, rcpts) in zip(self.messages, self.envelopes, strict=True) if address in rcpts]


@dataclass
class Smtp:
    host: str
    port: int
    inbox: SmtpInbox


@pytest.fixture
def smtp() -> Iterator[Smtp]:
    inbox = SmtpInbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield Smtp("127.0.0.1", port, inbox)
    finally:
        controller.stop()


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    form: dict[str, str]


@dataclass
class Provider:
    """Answers each path from its script ("200", "201", "429", "500", "400", "hang"), then 200."""

    url: str
    scripts: dict[str, list[str]] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)

    def script(self, path: str, *answers: str) -> None:
        self.scripts[path] = list(answers)

    def accepted(self, path: str) -> list[Received]:
        return [r for r in self.received if r.path == path and r.headers.get("X-Answer", "").startswith("2")]


@pytest.fixture
async def provider() -> AsyncIterator[Provider]:
    port = free_port()
    state = Provider(f"http://127.0.0.1:{port}")

    async def handle(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        script = state.scripts.get(request.path, [])
        answer = script.pop(0) if script else ("201" if "/Messages.json" in request.path else "200")
        form = dict(await request.post()) if request.content_type == "application/x-www-form-urlencoded" else {}
        headers = dict(request.headers) | {"X-Answer": answer}
        state.received.append(Received(request.path, headers, body, {k: str(v) for k, v in form.items()}))
        if answer == "hang":
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(state.release.wait(), 30)
        status = int(answer) if answer.isdigit() else 200
        extra = {"Retry-After": "3"} if status == 429 else {}
        payload = {"sid": "SM123"} if status == 201 else {"error": "x"} if status >= 400 else {"ok": True}
        return web.json_response(payload, status=status, headers=extra)

    app = web.Application()
    app.router.add_route("POST", "/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield state
    finally:
        state.release.set()
        await runner.cleanup()


class ListSink(FakePublisher):
    """Records published by the handler, by topic (the Kafka path is covered by the process test)."""

    def on(self, topic: str) -> list[Record]:
        return [r for t, r in self.records if t == topic]


@dataclass
class Harness:
    notifier: Notifier
    sink: ListSink
    registry: CollectorRegistry
    settings: NotifierSettings
    redis: Redis[bytes]

    def metric(self, name: str, labels: dict[str, str] | None = None) -> float:
        return self.registry.get_sample_value(name, labels or {}) or 0.0


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis[bytes]]:
    client: Redis[bytes] = Redis.from_url(redis_url)
    try:
        yield client
    finally:
        await client.aclose()  # type: ignore[attr-defined]


@pytest.fixture
async def make_harness(
    redis: Redis[bytes], redis_url: str, tmp_path: Path, smtp: Smtp, provider: Provider
) -> AsyncIterator[Any]:
    made: list[Notifier] = []

    def make(rebuildable: bool = False, client: Redis[bytes] | None = None, **overrides: Any) -> Harness:
        options: dict[str, Any] = {
            "kafka_bootstrap_servers": "unused:9092",
            "redis_url": redis_url,
            "notifier_redis_prefix": f"notifier:{uuid.uuid4().hex[:8]}:",
            "notifier_outbox_dir": tmp_path / "outbox",
            "notifier_email_transport": "smtp",
            "notifier_smtp_host": smtp.host,
            "notifier_smtp_port": smtp.port,
            "notifier_sms_transport": "http",
            "notifier_sms_base_url": provider.url,
            "notifier_slack_transport": "webhook",
            "notifier_slack_webhook_url": f"{provider.url}/slack",
            "notifier_webhook_transport": "http",
            "notifier_http_timeout_s": 0.5,
            "notifier_retry_base_s": 1.0,
            "notifier_max_attempts": 3,
            "notifier_channel_rate_per_s": {},
        } | overrides
        settings = NotifierSettings(**options)
        registry = CollectorRegistry()
        sink = ListSink()
        stage = StageMetrics("notifier", registry)
        events = EventProcessor(service="notifier", metrics=stage, publisher=sink)
        notifier = build_notifier(
            settings,
            redis=client or redis,
            publisher=sink,
            dead_letter=events.dead_letter,
            registry=registry,
            stage=stage,
            channels=build_channels(settings),
            rebuildable=rebuildable,
        )
        made.append(notifier)
        return Harness(notifier, sink, registry, settings, client or redis)

    yield make
    for notifier in made:
        for sender in {id(s): s for s in notifier.channels.values()}.values():
            await sender.close()
