"""The canary's synthetic lead."""

from __future__ import annotations

from datetime import UTC, datetime

from prometheus_client import CollectorRegistry

from leadpipe.canary import CANARY_DOMAIN, SOURCE, Canary, CanaryMetrics, canary_lead
from leadpipe.ops.settings import OpsSettings
from schemas import NotificationOutcome, encode, new_event
from schemas.codec import decode_record

NOW = datetime(2026, 5, 4, 9, 30, tzinfo=UTC)


def test_the_canary_lead_can_only_ever_address_a_reserved_invalid_domain() -> None:
    lead = canary_lead("abc123", NOW)
    assert lead.identity.email == f"probe-abc123@{CANARY_DOMAIN}"
    assert CANARY_DOMAIN.endswith(".invalid")
    assert lead.identity.phone is None
    assert lead.consent is None


def test_the_canary_event_is_flagged_synthetic_on_the_wire() -> None:
    event = new_event(canary_lead("abc123", NOW), source=SOURCE, subject="canary:abc123", synthetic=True)
    record = encode(event)
    assert record.header("ce_synthetic") == b"true"
    assert decode_record(record).synthetic is True


def _canary() -> Canary:
    return Canary(OpsSettings(kafka_bootstrap_servers="unused:9092"), CanaryMetrics(CollectorRegistry()), timeout_s=0.0)


def _outcome_record(correlation: str, status: str, synthetic: bool = True) -> tuple[list[tuple[str, bytes]], bytes]:
    outcome = NotificationOutcome(
        notification_id="n1",
        lead_id="ld_1",
        status=status,
        channel="email",
        audience="rep",  # type: ignore[arg-type]
        attempts=1,
        completed_at=NOW,
        provider_response="synthetic: not delivered",
    )
    record = encode(
        new_event(outcome, source="notifier", subject="ld_1", correlationid=correlation, synthetic=synthetic)
    )
    return record.headers, record.value


def test_an_outcome_that_is_not_synthetic_never_completes_a_canary() -> None:
    canary = _canary()
    from leadpipe.canary import InFlight

    canary.in_flight["c1"] = InFlight(published=0.0)
    headers, value = _outcome_record("c1", "sent", synthetic=False)
    canary.observe("notification.outcome.v1", headers, value)
    assert "c1" in canary.in_flight and canary.succeeded == 0


def test_a_failed_outcome_counts_as_a_canary_failure_with_its_status() -> None:
    from leadpipe.canary import InFlight

    canary = _canary()
    canary.in_flight["c1"] = InFlight(published=0.0)
    headers, value = _outcome_record("c1", "failed")
    canary.observe("notification.outcome.v1", headers, value)
    assert canary.failures == 1
    assert canary.metrics.registry.get_sample_value("leadpipe_canary_failed_total", {"reason": "outcome_failed"}) == 1


def test_a_canary_not_back_within_its_timeout_fails_as_timeout() -> None:
    from leadpipe.canary import InFlight

    canary = _canary()
    canary.in_flight["c1"] = InFlight(published=0.0, seen=["lead.scored.v1"])
    canary.expire()
    assert canary.in_flight == {}
    assert canary.metrics.registry.get_sample_value("leadpipe_canary_failed_total", {"reason": "timeout"}) == 1
