"""Builds the notifier once: settings -> channels, Redis state, handler (cosmicpython's bootstrap).

``worker.py`` only declares the agents; everything they run is made here, inside the running
loop (``ConsumerService.start``). ``build_notifier`` is also what the handler tests and the
benchmark build the handler with (over a fake or list publisher).

Adding a notification channel: ``adapters/<tech>_sender.py`` (a ``ChannelSender``), its
transport settings in ``config.py``, one branch in ``build_channels`` below, and its tests
(``docs/architecture.md``).
"""

from __future__ import annotations

import functools
import uuid
from typing import Any, ClassVar

import httpx
from prometheus_client import CollectorRegistry
from redis.asyncio import Redis

from leadpipe.runtime.metrics import StageMetrics
from leadpipe.runtime.publish import Publisher
from leadpipe.runtime.rebuild import RebuildGuard
from leadpipe.runtime.service import ConsumerService, started
from leadpipe.runtime.stream import BatchProcessor
from schemas.notification_requested.v1 import NotificationRequested
from services.notifier.adapters.channel import ChannelSender
from services.notifier.adapters.http_channels import HttpSms, SignedWebhook, SlackWebhook
from services.notifier.adapters.metrics import NotifierMetrics
from services.notifier.adapters.outbox import FileOutbox
from services.notifier.adapters.rebuild import rebuild
from services.notifier.adapters.redis_claim import RedisClaimer
from services.notifier.adapters.redis_ledger import RedisLedger
from services.notifier.adapters.redis_reads import RedisRequestReader
from services.notifier.adapters.redis_state import (
    RedisErasedList,
    RedisRecipientLimiter,
    RedisRetryBacklog,
    RedisSuppressionList,
)
from services.notifier.adapters.smtp_sender import SmtpSender
from services.notifier.adapters.templates import TemplateRenderer
from services.notifier.config import NotifierSettings
from services.notifier.domain.policy import RetryPolicy
from services.notifier.handlers import DeadLetter, Notifier, RequestBatch, Topics

SERVICE = "notifier"


def build_channels(settings: NotifierSettings) -> dict[str, ChannelSender]:
    """Which adapter serves each channel. Anything not configured for a real provider goes to
    the dev outbox (``phone`` and ``task`` always do: a person acts on them)."""
    s = settings
    client = httpx.AsyncClient(timeout=httpx.Timeout(s.notifier_http_timeout_s), follow_redirects=False)

    def outbox(name: str) -> FileOutbox:
        return FileOutbox(s.notifier_outbox_dir, name=name, sender=s.notifier_email_from)

    email: ChannelSender = outbox("email")
    if s.notifier_email_transport == "smtp":
        email = SmtpSender(
            host=s.notifier_smtp_host,
            port=s.notifier_smtp_port,
            sender=s.notifier_email_from,
            starttls=s.notifier_smtp_starttls,
            use_tls=s.notifier_smtp_tls,
            username=s.notifier_smtp_username,
            password=s.notifier_smtp_password,
            timeout_s=s.notifier_smtp_timeout_s,
        )
    sms: ChannelSender = outbox("sms")
    if s.notifier_sms_transport == "http":
        sms = HttpSms(
            client,
            base_url=s.notifier_sms_base_url,
            account_sid=s.notifier_sms_account_sid,
            auth_token=s.notifier_sms_auth_token,
            sender=s.notifier_sms_from,
        )
    slack: ChannelSender = outbox("slack")
    if s.notifier_slack_transport == "webhook":
        slack = SlackWebhook(client, s.notifier_slack_webhook_url)
    webhook: ChannelSender = outbox("webhook")
    if s.notifier_webhook_transport == "http":
        webhook = SignedWebhook(client, s.notifier_webhook_secret)
    return {
        "email": email,
        "sms": sms,
        "slack": slack,
        "webhook": webhook,
        "phone": outbox("phone"),
        "task": outbox("task"),
    }


def build_notifier(
    settings: NotifierSettings,
    *,
    redis: Redis[bytes],
    publisher: Publisher,
    dead_letter: DeadLetter,
    registry: CollectorRegistry,
    stage: StageMetrics,
    channels: dict[str, ChannelSender] | None = None,
    rebuildable: bool = False,
) -> Notifier:
    """``rebuildable``: Redis is rebuilt from the broker when its keyspace is empty, and a claim
    without the built marker fails (the worker; benchmarks and handler tests leave it off)."""
    s = settings
    prefix = s.notifier_redis_prefix
    metrics = NotifierMetrics(registry)
    ledger = RedisLedger(redis, prefix=prefix, ttl_s=s.notifier_ledger_ttl_s, guarded=rebuildable)
    suppression = RedisSuppressionList(redis, prefix=prefix)
    erased = RedisErasedList(redis, secret=s.leadpipe_privacy_secret, prefix=prefix)
    limiter = RedisRecipientLimiter(
        limit=s.notifier_recipient_limit, window_s=s.notifier_recipient_window_s, prefix=prefix
    )
    internal_limiter = RedisRecipientLimiter(limit=s.notifier_internal_recipient_limit,
                                             window_s=s.notifier_recipient_window_s, prefix=prefix, scope="rli")  # fmt: skip

    async def rebuild_once() -> bool:
        token = uuid.uuid4().hex
        if not await ledger.begin_rebuild(token):
            return False  # another replica is rebuilding: the guard waits for its marker
        await rebuild(s, ledger, suppression, outcome_topic=s.notifier_outcome_topic,
                      engagement_topic=s.notifier_engagement_topic, erased=erased,
                      erased_topic=s.notifier_erased_topic)  # fmt: skip
        return await ledger.mark_built(token)

    guard = RebuildGuard(service=SERVICE, source="Kafka (the outcome, engagement and erased topics)",
                         is_built=ledger.is_built, rebuild=rebuild_once, on_rebuilt=metrics.rebuilds.inc)  # fmt: skip
    return Notifier(
        renderer=TemplateRenderer(
            s.notifier_templates_dir, link_secret=s.leadpipe_link_secret, public_url=s.leadpipe_public_url
        ),
        channels=channels if channels is not None else build_channels(s),
        ledger=ledger,
        suppression=suppression,
        erased=erased,
        reader=RedisRequestReader(ledger, suppression, erased),
        outbox_dirs=[s.notifier_outbox_dir],
        claimer=RedisClaimer(ledger, {"lead": limiter, "internal": internal_limiter}),
        backlog=RedisRetryBacklog(redis, prefix=prefix),
        publisher=publisher,
        dead_letter=dead_letter,
        metrics=metrics,
        stage=stage,
        topics=Topics(
            requested=s.notifier_requested_topic,
            outcome=s.notifier_outcome_topic,
            retry=s.notifier_retry_topic,
            engagement=s.notifier_engagement_topic,
        ),
        policy=RetryPolicy(s.notifier_max_attempts, s.notifier_retry_base_s, s.notifier_retry_cap_s),
        channel_rates=s.notifier_channel_rate_per_s,
        lease_s=s.notifier_send_lease_s,
        max_record_bytes=s.kafka_max_record_bytes,
        ensure_built=guard.ensure_built if rebuildable else None,
    )


class NotifierService(ConsumerService):
    service = SERVICE
    # A Redis that stops answering is a transient failure, not a hang.
    redis_options: ClassVar[dict[str, Any]] = {"socket_timeout": 5, "socket_connect_timeout": 5}

    def __init__(self, settings: NotifierSettings, registry: CollectorRegistry | None = None):
        self.registry = registry or CollectorRegistry()
        super().__init__(settings, StageMetrics(SERVICE, self.registry))
        self.config = settings
        self._notifier: Notifier | None = None
        self._requests: BatchProcessor | None = None

    @property
    def notifier(self) -> Notifier:
        return started(self._notifier)

    @property
    def requests(self) -> BatchProcessor:
        """notification.requested in batches, each request through ``Notifier.on_request``."""
        return started(self._requests)

    async def build(self) -> None:
        self._notifier = build_notifier(self.config, redis=self.redis, publisher=self.publisher,
                                        dead_letter=self.events.dead_letter, registry=self.registry,
                                        stage=self.stage, rebuildable=True)  # fmt: skip
        notifier = self._notifier
        self._requests = BatchProcessor(
            self.events, RequestBatch(), {self.config.notifier_requested_topic: NotificationRequested},
            concurrency=self.config.notifier_concurrency,
            for_record=lambda msg: functools.partial(notifier.on_request, msg=msg),
        )  # fmt: skip
        # Redis is an index of the topics: an empty keyspace is rebuilt before anything is sent.
        await self._notifier.ensure_built()

    async def close(self) -> None:
        if self._notifier is not None:
            for sender in {id(s): s for s in self._notifier.channels.values()}.values():
                await sender.close()
