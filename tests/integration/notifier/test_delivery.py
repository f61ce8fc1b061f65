"""The notifier's handler against real servers: an aiosmtpd SMTP server, an aiohttp provider
(200 / 429 / 500 / hang) and the session Redis. Kafka is replaced by a list sink here; the
process test covers the broker path."""

from __future__ import annotations

import hashlib
import hmac
import time
from datetime import UTC, datetime, timedelta

import orjson
from redis.exceptions import ConnectionError as RedisConnectionError

from schemas.codec import decode
from schemas.links import verify
from services.notifier.adapters.http_channels import SIGNATURE_HEADER
from tests.integration.notifier.helpers import as_raw, clear_of_window_end, engagement, outcomes, request

OUT = "notification.outcome.v1"
RETRY = "notification.retry.v1"
DLQ = "notification.requested.v1.dlq"


async def test_rep_alert_arrives_over_smtp_with_summary_grade_reasons_and_links(make_harness, smtp):
    h = make_harness()
    event, msg = request(lead_captured_at=datetime.now(UTC) - timedelta(seconds=42))
    await h.notifier.on_request(event, msg)

    [mail] = smtp.inbox.messages
    assert mail["Subject"] == "New grade A lead: Dana Lee (Example Corp)"
    assert mail["To"] == "Ana <ana@sales.example>"
    assert mail.get_content_type() == "multipart/alternative"
    assert mail["Message-ID"].startswith("<") and mail["X-Leadpipe-Notification-Id"] == event.data.notification_id
    text = mail.get_body(("plain",)).get_content()
    html = mail.get_body(("html",)).get_content()
    for part in (text, html):
        assert "Director-level title" in part and "Urgent need" in part
        assert "In served area" not in part  # only the top three reasons
        assert "/v1/assignments/tok/accept" in part and "/v1/assignments/tok/decline" in part
    assert "Grade:  A (score 72.5)" in text
    assert mail["List-Unsubscribe"] is None  # reps get no unsubscribe link

    [outcome] = outcomes(h.sink.on(OUT))
    assert (outcome.status, outcome.attempts, outcome.template) == ("sent", 1, "rep_alert")
    assert outcome.provider_response.startswith("250")
    assert h.metric("leadpipe_notifier_sends_total", {"channel": "email", "outcome": "sent"}) == 1
    assert 42 <= h.metric("leadpipe_capture_to_rep_alert_seconds_sum") < 60


async def test_lead_email_carries_a_working_unsubscribe_link_and_rfc8058_headers(make_harness, smtp):
    h = make_harness()
    event, msg = request(
        audience="lead", address="dana@example.com", template="weekly_checkin", variables={"first_name": "Dana"}
    )
    await h.notifier.on_request(event, msg)

    [mail] = smtp.inbox.to("dana@example.com")
    assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    url = mail["List-Unsubscribe"].strip("<>")
    assert url.startswith("http://127.0.0.1:8080/v1/unsubscribe/")
    claims = verify("dev-link-secret", url.rsplit("/", 1)[1], "unsubscribe")
    assert (claims["lid"], claims["ch"], claims["addr"]) == ("ld_test", "email", "dana@example.com")
    assert url in mail.get_body(("plain",)).get_content()
    assert url in mail.get_body(("html",)).get_content()


async def test_chinese_locale_is_rendered_in_chinese(make_harness, smtp):
    h = make_harness()
    event, msg = request(locale="zh-CN")
    await h.notifier.on_request(event, msg)
    [mail] = smtp.inbox.messages
    assert mail["Subject"] == "新的 A 级线索：Dana Lee（Example Corp）"
    assert "接受：http://127.0.0.1:8080/v1/assignments/tok/accept" in mail.get_body(("plain",)).get_content()


async def test_missing_variable_ends_as_failed_with_a_clear_error_and_sends_nothing(make_harness, smtp):
    h = make_harness()
    event, msg = request(variables={"lead": {"name": "Dana"}})
    await h.notifier.on_request(event, msg)
    [outcome] = outcomes(h.sink.on(OUT))
    assert outcome.status == "failed" and outcome.attempts == 0
    assert "missing variable" in outcome.error and "rep_alert" in outcome.error
    assert smtp.inbox.messages == []


async def test_unknown_template_ends_as_failed_naming_it(make_harness, smtp):
    h = make_harness()
    event, msg = request(template="black_friday", variables={})
    await h.notifier.on_request(event, msg)
    [outcome] = outcomes(h.sink.on(OUT))
    assert outcome.status == "failed" and "'black_friday' not found" in outcome.error
    assert smtp.inbox.messages == []


async def test_same_request_twice_is_sent_once_with_one_outcome(make_harness, smtp):
    h = make_harness()
    event, msg = request()
    await h.notifier.on_request(event, msg)
    await h.notifier.on_request(event, msg)
    assert len(smtp.inbox.messages) == 1
    assert len(h.sink.on(OUT)) == 1
    assert h.metric("leadpipe_notifier_duplicate_requests_total") == 1


async def test_outcome_lost_before_publishing_is_published_on_redelivery_without_resending(make_harness, smtp):
    h = make_harness()
    event, msg = request()
    await h.notifier.on_request(event, msg)
    # A crash after the ledger recorded "sent" but before the outcome reached Kafka:
    await h.redis.hset(h.notifier.ledger.key(event.data.notification_id), "published", "0")
    await h.notifier.on_request(event, msg)
    assert len(smtp.inbox.messages) == 1
    first, second = h.sink.on(OUT)
    assert first == second  # the very same outcome record (same event id)


async def test_interrupted_send_is_resent_once_with_the_same_message_id(make_harness, smtp):
    h = make_harness()
    event, msg = request()
    nid = event.data.notification_id
    # A worker claimed the request and died mid-send; its lease ran out.
    await h.notifier.ledger.claim(nid, now=time.time() - 100, lease_s=30)
    await h.notifier.on_request(event, msg)
    [mail] = smtp.inbox.messages
    [outcome] = outcomes(h.sink.on(OUT))
    assert outcome.status == "sent" and outcome.attempts == 2
    assert h.metric("leadpipe_notifier_resent_after_crash_total", {"channel": "email"}) == 1
    assert mail["Message-ID"] == f"<{hashlib.sha256(nid.encode()).hexdigest()[:32]}@leadpipe.local>"


async def test_a_host_crash_after_the_outbox_took_a_message_does_not_write_it_twice(make_harness, tmp_path):
    """Found by the chaos suite's host crash: Redis died right after the dev outbox (the
    provider) took a manager alert, so ``sent`` was never recorded, and the worker was killed.
    After the restart the claim is still ``sending``: the outbox's own log says it was written."""
    h = make_harness(notifier_email_transport="outbox")
    event, msg = request()
    nid = event.data.notification_id
    await h.notifier.on_request(event, msg)
    # Undo the ledger's record of it, as if the write of "sent" never happened and the lease ran out.
    await h.redis.delete(h.notifier.ledger.key(nid))
    await h.notifier.ledger.claim(nid, now=time.time() - 100, lease_s=30)
    await h.notifier.on_request(event, msg)
    lines = [orjson.loads(x) for x in (tmp_path / "outbox" / "outbox.jsonl").read_bytes().splitlines()]
    assert [x["notification_id"] for x in lines] == [nid]
    assert len(list((tmp_path / "outbox").glob("*.eml"))) == 1
    sent = [o for o in outcomes(h.sink.on(OUT)) if o.status == "sent"]
    assert sent and sent[-1].provider_response.startswith("outbox: already written at ")
    assert h.metric("leadpipe_notifier_reconciled_after_crash_total", {"channel": "email"}) == 1
    assert not h.metric("leadpipe_notifier_resent_after_crash_total", {"channel": "email"})


async def test_a_redis_blip_while_recording_a_send_does_not_send_it_again(make_harness, smtp):
    """Found by the chaos suite: Redis restarted right after the provider accepted a message.
    The ledger write of ``sent`` failed, the handler was run again, found its own claim still
    ``sending`` and, once the lease ran out, sent the message a second time."""
    h = make_harness()
    event, msg = request()
    ledger = h.notifier.ledger
    real_finish = ledger.finish
    failures = [RedisConnectionError("Connection closed by server.")]

    async def blip_then_finish(*args, **kwargs):
        if failures:
            raise failures.pop()
        return await real_finish(*args, **kwargs)

    ledger.finish = blip_then_finish
    await h.notifier.on_request(event, msg)
    await h.notifier.on_request(event, msg)  # at-least-once: the same request delivered again
    assert failures == []
    assert len(smtp.inbox.messages) == 1
    [outcome] = outcomes(h.sink.on(OUT))
    assert outcome.status == "sent" and outcome.attempts == 1
    assert h.sink.on(RETRY) == []


async def test_request_in_flight_elsewhere_is_deferred_not_sent(make_harness, smtp):
    h = make_harness()
    event, msg = request()
    await h.notifier.ledger.claim(event.data.notification_id, now=time.time(), lease_s=30)
    await h.notifier.on_request(event, msg)
    assert smtp.inbox.messages == [] and h.sink.on(OUT) == []
    [retry] = h.sink.on(RETRY)
    assert float(retry.header("notifier_due_at")) > time.time() + 25


async def test_smtp_4xx_is_retried_later_and_5xx_fails_at_once(make_harness, smtp):
    h = make_harness()
    smtp.inbox.replies = ["451 4.3.0 try again later"]
    event, msg = request()
    await h.notifier.on_request(event, msg)
    assert h.sink.on(OUT) == []
    [retry] = h.sink.on(RETRY)
    assert decode(retry.value, retry.headers).data == event.data
    assert h.metric("leadpipe_notifier_provider_errors_total", {"channel": "email", "kind": "smtp_4xx"}) == 1
    await h.notifier.on_retry(event, as_raw(RETRY, retry))
    assert len(smtp.inbox.messages) == 1
    [outcome] = outcomes(h.sink.on(OUT))
    assert (outcome.status, outcome.attempts) == ("sent", 2)

    smtp.inbox.replies = ["550 5.1.1 mailbox unknown"]
    event, msg = request()
    await h.notifier.on_request(event, msg)
    failed = outcomes(h.sink.on(OUT))[-1]
    assert (failed.status, failed.attempts, failed.error) == ("failed", 1, "permanent failure")
    assert failed.provider_response.startswith("550")
    assert len(h.sink.on(RETRY)) == 1


async def test_500_then_200_provider_gets_exactly_one_message(make_harness, provider):
    h = make_harness()
    provider.script("/hooks/crm", "500")
    event, msg = request(channel="webhook", address=f"{provider.url}/hooks/crm")
    await h.notifier.on_request(event, msg)
    [retry] = h.sink.on(RETRY)
    due = float(retry.header("notifier_due_at"))
    assert time.time() + 0.4 < due < time.time() + 1.1  # base 1 s, jitter between half and all
    await h.notifier.on_retry(event, as_raw(RETRY, retry))
    await h.notifier.on_retry(event, as_raw(RETRY, retry))  # the retry record redelivered
    assert len(provider.accepted("/hooks/crm")) == 1
    assert len(provider.received) == 2
    [outcome] = outcomes(h.sink.on(OUT))
    assert (outcome.status, outcome.attempts) == ("sent", 2)


async def test_webhook_body_is_hmac_signed(make_harness, provider):
    h = make_harness(notifier_webhook_secret="s3cret")
    event, msg = request(channel="webhook", address=f"{provider.url}/hooks/crm")
    await h.notifier.on_request(event, msg)
    [got] = provider.received
    parts = dict(p.split("=", 1) for p in got.headers[SIGNATURE_HEADER].split(","))
    expected = hmac.new(b"s3cret", parts["t"].encode() + b"." + got.body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(parts["v1"], expected)
    assert got.headers["Idempotency-Key"] == event.data.notification_id
    body = orjson.loads(got.body)
    assert body["template"] == "rep_alert" and body["variables"]["lead"]["grade"] == "A"


async def test_slack_gets_the_short_alert_text(make_harness, provider):
    h = make_harness()
    event, msg = request(channel="slack", address="#sales-west")
    await h.notifier.on_request(event, msg)
    [got] = provider.received
    body = orjson.loads(got.body)
    assert got.path == "/slack" and body["channel"] == "#sales-west"
    assert body["text"].startswith("New grade A lead Dana Lee (Example Corp): Director-level title")
    assert outcomes(h.sink.on(OUT))[0].status == "sent"


async def test_sms_goes_to_a_twilio_style_api_with_basic_auth(make_harness, provider):
    h = make_harness(notifier_sms_account_sid="AC42", notifier_sms_auth_token="tok")
    event, msg = request(
        channel="sms",
        audience="lead",
        address="+14155550100",
        template="weekly_checkin",
        variables={"first_name": "Dana"},
    )
    await h.notifier.on_request(event, msg)
    [got] = provider.received
    assert got.path == "/2010-04-01/Accounts/AC42/Messages.json"
    assert got.headers["Authorization"].startswith("Basic ")
    assert got.form["To"] == "+14155550100" and "Reply STOP" in got.form["Body"]
    [outcome] = outcomes(h.sink.on(OUT))
    assert (outcome.status, outcome.provider_response) == ("sent", "sid=SM123")


async def test_429_waits_at_least_retry_after_and_a_hang_is_a_timeout(make_harness, provider):
    h = make_harness()
    provider.script("/hooks/a", "429")
    provider.script("/hooks/b", "hang")
    event, msg = request(channel="webhook", address=f"{provider.url}/hooks/a")
    await h.notifier.on_request(event, msg)
    [retry] = h.sink.on(RETRY)
    assert float(retry.header("notifier_due_at")) >= time.time() + 2.5  # Retry-After: 3
    started = time.monotonic()
    event, msg = request(channel="webhook", address=f"{provider.url}/hooks/b")
    await h.notifier.on_request(event, msg)
    assert time.monotonic() - started < 2.0  # 0.5 s client timeout, not the provider's 30 s
    assert len(h.sink.on(RETRY)) == 2
    assert h.metric("leadpipe_notifier_provider_errors_total", {"channel": "webhook", "kind": "rate_limited"}) == 1
    assert h.metric("leadpipe_notifier_provider_errors_total", {"channel": "webhook", "kind": "timeout"}) == 1
    assert h.metric("leadpipe_notifier_retry_backlog") == 2


async def test_after_the_last_attempt_the_request_is_dead_lettered_and_failed(make_harness, provider):
    h = make_harness(notifier_max_attempts=2)
    provider.script("/hooks/down", "500", "503")
    event, msg = request(channel="webhook", address=f"{provider.url}/hooks/down")
    await h.notifier.on_request(event, msg)
    [retry] = h.sink.on(RETRY)
    await h.notifier.on_retry(event, as_raw(RETRY, retry))
    [dead] = h.sink.on(DLQ)
    assert dead.value == msg.value and dead.header("dlq_topic") == b"notification.requested.v1"
    assert b"gave up after 2 attempts" in dead.header("dlq_error")
    [outcome] = outcomes(h.sink.on(OUT))
    assert (outcome.status, outcome.attempts) == ("failed", 2)
    assert outcome.provider_response.startswith("503")


async def test_unsubscribed_complained_and_hard_bounced_addresses_get_nothing(make_harness, smtp, provider):
    h = make_harness()
    await h.notifier.on_engagement(engagement("unsubscribed", email="Dana@Example.com", channel="email"))
    await h.notifier.on_engagement(engagement("complained", phone="+1 415 555 0100", channel="sms"))
    await h.notifier.on_engagement(engagement("email_bounced", email="gone@example.com", bounce_type="hard"))
    await h.notifier.on_engagement(engagement("email_bounced", email="full@example.com", bounce_type="soft"))
    lead = {"audience": "lead", "template": "weekly_checkin", "variables": {"first_name": "D"}}
    for address, channel in [
        ("dana@example.com", "email"),
        ("+14155550100", "sms"),
        ("gone@example.com", "email"),
        ("full@example.com", "email"),
    ]:
        event, msg = request(channel=channel, address=address, **lead)
        await h.notifier.on_request(event, msg)
    statuses = [o.status for o in outcomes(h.sink.on(OUT))]
    assert statuses == ["suppressed", "suppressed", "suppressed", "sent"]
    assert [rcpts for _, rcpts in smtp.inbox.envelopes] == [["full@example.com"]]
    assert provider.received == []


async def test_expired_and_synthetic_requests_are_never_delivered(make_harness, smtp):
    h = make_harness()
    event, msg = request(expires_at=datetime.now(UTC) - timedelta(minutes=1))
    await h.notifier.on_request(event, msg)
    event, msg = request(synthetic=True)
    await h.notifier.on_request(event, msg)
    expired, synthetic = outcomes(h.sink.on(OUT))
    assert expired.status == "expired" and expired.attempts == 0
    assert (synthetic.status, synthetic.provider_response) == ("sent", "synthetic: not delivered")
    assert decode(h.sink.on(OUT)[1].value, h.sink.on(OUT)[1].headers).synthetic
    assert smtp.inbox.messages == []
    assert h.metric("leadpipe_notifier_sends_total", {"channel": "email", "outcome": "sent"}) == 0


LEAD_TOUCH = {"audience": "lead", "template": "weekly_checkin", "variables": {"first_name": "Dana"}}


async def test_not_before_and_recipient_limit_defer_instead_of_sending(make_harness, smtp):
    h = make_harness(notifier_recipient_limit=1)
    h.notifier.clock = clock = clear_of_window_end(h.settings.notifier_recipient_window_s)
    event, msg = request(not_before=datetime.fromtimestamp(clock(), UTC) + timedelta(minutes=5))
    await h.notifier.on_request(event, msg)
    assert smtp.inbox.messages == [] and h.sink.on(OUT) == []
    for _ in range(2):
        event, msg = request(address="busy@lead.example", **LEAD_TOUCH)
        await h.notifier.on_request(event, msg)
    assert len(smtp.inbox.to("busy@lead.example")) == 1
    assert len(h.sink.on(RETRY)) == 2 and len(h.sink.on(OUT)) == 1
    assert h.metric("leadpipe_notifier_recipient_limited_total", {"scope": "lead"}) == 1
    # Deferred past its expiry -> expired now, not later.
    event, msg = request(
        address="busy@lead.example",
        expires_at=datetime.fromtimestamp(clock(), UTC) + timedelta(seconds=30),
        **LEAD_TOUCH,
    )
    await h.notifier.on_request(event, msg)
    assert outcomes(h.sink.on(OUT))[-1].status == "expired"


async def test_a_reps_alerts_are_never_held_by_the_lead_facing_cap_only_by_the_much_higher_internal_fuse(
    make_harness, smtp
):
    h = make_harness(notifier_recipient_limit=1, notifier_internal_recipient_limit=5)
    h.notifier.clock = clear_of_window_end(h.settings.notifier_recipient_window_s)
    # The same person is also a lead somewhere (a rep trying the demo form): the counts stay apart.
    event, msg = request(address="ana@sales.example", **LEAD_TOUCH)
    await h.notifier.on_request(event, msg)
    for audience in ("rep", "rep", "manager", "rep", "rep"):
        event, msg = request(address="ana@sales.example", audience=audience)
        await h.notifier.on_request(event, msg)
    assert len(smtp.inbox.to("ana@sales.example")) == 6 and h.sink.on(RETRY) == []
    event, msg = request(address="ana@sales.example")  # the sixth internal one in the window trips the fuse
    await h.notifier.on_request(event, msg)
    assert len(smtp.inbox.to("ana@sales.example")) == 6 and len(h.sink.on(RETRY)) == 1
    assert h.metric("leadpipe_notifier_recipient_limited_total", {"scope": "internal"}) == 1
    assert h.metric("leadpipe_notifier_recipient_limited_total", {"scope": "lead"}) == 0


async def test_dev_outbox_writes_eml_files_and_a_json_lines_log(make_harness, tmp_path):
    h = make_harness(notifier_email_transport="outbox", notifier_sms_transport="outbox")
    event, msg = request(audience="lead", template="onboarding", variables={"first_name": "Dana", "step": 1})
    await h.notifier.on_request(event, msg)
    event2, msg2 = request(
        channel="sms",
        audience="lead",
        address="+14155550100",
        template="onboarding",
        variables={"first_name": "Dana", "step": 2},
    )
    await h.notifier.on_request(event2, msg2)
    outbox = tmp_path / "outbox"
    [eml] = list(outbox.glob("*.eml"))
    assert b"List-Unsubscribe-Post: List-Unsubscribe=One-Click" in eml.read_bytes()
    lines = [orjson.loads(line) for line in (outbox / "outbox.jsonl").read_bytes().splitlines()]
    assert [(e["channel"], e["notification_id"]) for e in lines] == [
        ("email", event.data.notification_id),
        ("sms", event2.data.notification_id),
    ]
    assert lines[0]["file"] == eml.name and "step 2" in lines[1]["text"]


async def test_a_marketing_message_whose_consent_does_not_cover_its_channel_is_refused_and_never_sent(
    make_harness, smtp
):
    h = make_harness()
    touch = {"audience": "lead", "template": "weekly_checkin", "variables": {"first_name": "D"}}
    sms_only = {"channels": ["sms"], "basis": "consent"}
    for nid, consent in (("no-basis", None), ("sms-only", sms_only)):
        event, msg = request(address="dana@example.com", nid=nid, consent=consent, **touch)
        await h.notifier.on_request(event, msg)
    # The reply to the person's own request is transactional: it goes without any consent.
    reply, msg = request(address="dana@example.com", nid="reply", audience="lead", template="lead_reply",
                         variables={"first_name": "D", "rep_name": None}, consent=None)  # fmt: skip
    await h.notifier.on_request(reply, msg)

    got = {o.notification_id: (o.status, o.error) for o in outcomes(h.sink.on(OUT))}
    assert got == {
        "no-basis": ("suppressed", "no consent for channel 'email'"),
        "sms-only": ("suppressed", "no consent for channel 'email'"),
        "reply": ("sent", None),
    }
    assert [m["X-Leadpipe-Notification-Id"] for m in smtp.inbox.messages] == ["reply"]
    assert h.metric("leadpipe_notifier_consent_refusals_total", {"channel": "email"}) == 2
