"""Settings of the notifier (built only in the entrypoint, passed down)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from leadpipe.runtime.settings import LinkSettings, ServiceSettings
from schemas.topics import consumer_group

TEMPLATES_DIR = Path(__file__).parent / "templates"


class NotifierSettings(ServiceSettings, LinkSettings):
    ops_host: str = "127.0.0.1"
    ops_port: int = 9103
    #: The Faust app id, which is also the consumer group.
    notifier_app_id: str = consumer_group("notifier")
    notifier_redis_prefix: str = "notifier:"
    notifier_requested_topic: str = "notification.requested.v1"
    notifier_outcome_topic: str = "notification.outcome.v1"
    notifier_engagement_topic: str = "lead.engagement.v1"
    notifier_erasure_topic: str = "person.erasure_requested.v1"
    notifier_erased_topic: str = "person.erased.v1"
    #: Internal topic holding requests that wait for a retry (created by the worker).
    notifier_retry_topic: str = "notification.retry.v1"
    #: Requests in flight at once: a batch's requests (``notifier_batch_max``, or what came within
    #: ``notifier_batch_within_s``) run concurrently up to this many, and so do retries. Concurrent
    #: requests share Redis round trips (auto-pipelining) and produce requests.
    notifier_concurrency: int = 16
    notifier_batch_max: int = 200
    notifier_batch_within_s: float = 0.01
    notifier_commit_interval_s: float = 1.0

    notifier_templates_dir: Path = TEMPLATES_DIR
    notifier_outbox_dir: Path = Path(".leadpipe/outbox")

    #: Which adapter serves each channel; the dev default writes everything to the outbox.
    notifier_email_transport: Literal["outbox", "smtp"] = "outbox"
    notifier_sms_transport: Literal["outbox", "http"] = "outbox"
    notifier_slack_transport: Literal["outbox", "webhook"] = "outbox"
    notifier_webhook_transport: Literal["outbox", "http"] = "outbox"

    notifier_email_from: str = "leadpipe <noreply@leadpipe.local>"
    notifier_smtp_host: str = "127.0.0.1"
    notifier_smtp_port: int = 25
    notifier_smtp_starttls: bool = False
    notifier_smtp_tls: bool = False
    notifier_smtp_username: str | None = None
    notifier_smtp_password: str | None = None
    notifier_smtp_timeout_s: float = 10.0

    notifier_slack_webhook_url: str | None = None
    notifier_webhook_secret: str = "dev-webhook-secret"
    notifier_http_timeout_s: float = 5.0
    notifier_sms_base_url: str = "https://api.twilio.com"
    notifier_sms_account_sid: str = "AC-dev"
    notifier_sms_auth_token: str = "dev-token"
    notifier_sms_from: str = "+15550000000"

    notifier_max_attempts: int = 5
    notifier_retry_base_s: float = 2.0
    notifier_retry_cap_s: float = 300.0
    #: How long a "sending" claim holds before another delivery may take the request over.
    notifier_send_lease_s: float = 30.0
    notifier_ledger_ttl_s: int = 30 * 24 * 3600

    #: Per lead-facing recipient: at most this many messages per window (a lead is never flooded).
    notifier_recipient_limit: int = 20
    notifier_recipient_window_s: int = 3600
    #: Per rep or manager address, same window: not a courtesy cap but a fuse against a bug (a
    #: routing loop, a replayed topic) mailing one person thousands of times. 1000 an hour is
    #: 50x the lead cap and far above any real day (daily capacities are 10-20 leads a rep, plus
    #: SLA and overflow alerts), so a working rep's alert is never held by it.
    notifier_internal_recipient_limit: int = 1000
    #: Per channel: provider requests per second from one worker.
    notifier_channel_rate_per_s: dict[str, float] = Field(
        default_factory=lambda: {"email": 50.0, "sms": 10.0, "slack": 1.0, "webhook": 50.0}
    )
