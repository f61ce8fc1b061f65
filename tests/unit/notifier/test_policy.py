from datetime import UTC, datetime, timedelta

from services.notifier.domain.message import SendResult
from services.notifier.domain.policy import (
    Action,
    RetryPolicy,
    after_failure,
    before_send,
    classify_http,
    classify_smtp,
    limit_scope,
    resolve_locale,
)

NOW = datetime(2026, 5, 4, 9, 30, tzinfo=UTC)


def _decide(**overrides):
    args = {"now": NOW, "synthetic": False, "expires_at": None, "not_before": None, "suppressed_reason": None}
    return before_send(**(args | overrides))


def test_a_plain_request_is_sent():
    assert _decide().action is Action.SEND


def test_a_synthetic_request_is_never_delivered_even_to_a_suppressed_address():
    decision = _decide(synthetic=True, suppressed_reason="unsubscribed")
    assert (decision.action, decision.reason) == (Action.SYNTHETIC, "synthetic: not delivered")


def test_a_request_past_its_expiry_is_not_sent():
    assert _decide(expires_at=NOW).action is Action.EXPIRED
    assert _decide(expires_at=NOW + timedelta(seconds=1)).action is Action.SEND


def test_a_suppressed_address_is_never_contacted():
    decision = _decide(suppressed_reason="complained")
    assert decision.action is Action.SUPPRESSED and "complained" in decision.reason


def test_a_request_before_its_not_before_time_waits_until_then():
    later = NOW + timedelta(hours=2)
    assert _decide(not_before=later) == _decide(not_before=later).__class__(Action.DEFER, "not before", later)


def test_rep_and_manager_alerts_never_count_against_the_lead_facing_cap():
    assert limit_scope("rep") == "internal" and limit_scope("manager") == "internal"


def test_messages_to_leads_count_against_the_lead_facing_cap():
    assert limit_scope("lead") == "lead"


def test_timeouts_rate_limits_and_server_errors_are_transient_other_client_errors_permanent():
    assert classify_http(200) == ("ok", None)
    assert classify_http(201) == ("ok", None)
    assert classify_http(429) == ("transient", "rate_limited")
    assert classify_http(408) == ("transient", "timeout")
    assert classify_http(503) == ("transient", "server_error")
    assert classify_http(400) == ("permanent", "client_error")
    assert classify_http(404) == ("permanent", "client_error")


def test_smtp_4xx_is_transient_and_5xx_permanent():
    assert classify_smtp(250) == ("ok", None)
    assert classify_smtp(451) == ("transient", "smtp_4xx")
    assert classify_smtp(550) == ("permanent", "smtp_5xx")


def test_backoff_doubles_each_attempt_within_half_and_all_of_the_step_and_is_capped():
    policy = RetryPolicy(max_attempts=10, base_s=2.0, cap_s=60.0)
    assert [policy.delay_s(n, jitter=0.0) for n in (1, 2, 3)] == [1.0, 2.0, 4.0]
    assert [policy.delay_s(n, jitter=0.5) for n in (1, 2, 3)] == [1.5, 3.0, 6.0]
    assert policy.delay_s(20, jitter=0.5) == 45.0


def test_a_providers_retry_after_is_a_floor_for_the_delay():
    assert RetryPolicy(base_s=1.0).delay_s(1, jitter=0.0, retry_after_s=30.0) == 30.0


def test_a_permanent_failure_ends_at_once_without_dead_lettering():
    result = SendResult("permanent", "550 no such user", "smtp_5xx")
    nxt = after_failure(result, attempt=1, policy=RetryPolicy(), now=NOW, jitter=0.0)
    assert (nxt.retry_at, nxt.dead_letter) == (None, False)


def test_a_transient_failure_is_retried_until_the_last_attempt_then_dead_lettered():
    result = SendResult("transient", "500", "server_error")
    policy = RetryPolicy(max_attempts=3, base_s=2.0)
    first = after_failure(result, attempt=1, policy=policy, now=NOW, jitter=0.0)
    assert first.retry_at == NOW + timedelta(seconds=1)
    last = after_failure(result, attempt=3, policy=policy, now=NOW, jitter=0.0)
    assert (last.retry_at, last.dead_letter) == (None, True)


def test_locales_resolve_exactly_then_by_language_then_to_english():
    shipped = {"en", "zh-CN"}
    assert resolve_locale("zh-CN", shipped) == "zh-CN"
    assert resolve_locale("zh_cn", shipped) == "zh-CN"
    assert resolve_locale("zh", shipped) == "zh-CN"
    assert resolve_locale("en-GB", shipped) == "en"
    assert resolve_locale("fr", shipped) == "en"
