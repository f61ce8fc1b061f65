"""Marketing goes only where the person consented (or a team configured a legitimate interest);
a reply to their own request and staff alerts go regardless. The clock is passed in."""

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from schemas.notification_outcome.v1 import NO_CONSENT_ERROR, NotificationOutcome
from services.nurture.domain.consent import WAITING_FOR_CONSENT, ConsentPolicy, parse_consent_policy
from services.nurture.domain.engine import Nurture
from services.nurture.domain.errors import ConfigError
from services.nurture.domain.playbooks import parse_playbooks
from services.nurture.domain.state import LeadState
from tests.unit.nurture.builders import CONFIG, MONDAY_10_NY, directory, playbooks, route_first, scored
from tests.unit.nurture.test_nurture_rules import run_until, sent

DAY = timedelta(days=1)
PHONE = "+14155550100"


def engine(consent: ConsentPolicy | None = None) -> Nurture:
    books = playbooks()
    return Nurture(replace(books, consent=consent) if consent else books, directory())


def notes(st: LeadState) -> list[str]:
    return [x.reason for x in st.consent_notes]


def test_a_form_without_marketing_consent_gets_its_reply_and_no_marketing_touch():
    n = engine()
    d = route_first(n, n.on_scored(None, "ev1", scored(grade="A", consent=()), MONDAY_10_NY), MONDAY_10_NY)
    d.absorb(n.on_tick(d.state, MONDAY_10_NY))
    st, later = run_until(n, d.state, MONDAY_10_NY + 60 * DAY)
    assert [x.template for x in sent([d, *later])] == ["lead_reply"]
    assert [x.template for x in sent([d], "rep")] == ["rep_alert"]  # staff are told regardless
    assert (st.cadence_active, st.cadence_stop_reason) == (False, WAITING_FOR_CONSENT)
    assert notes(st) == ["cadence not started on email: no marketing consent"]


def test_the_reply_to_the_persons_own_request_carries_no_marketing_basis():
    n = engine()
    d = route_first(n, n.on_scored(None, "ev1", scored(grade="A", consent=()), MONDAY_10_NY), MONDAY_10_NY)
    d.absorb(n.on_tick(d.state, MONDAY_10_NY))
    (reply,) = sent([d])
    assert reply.consent is None


def test_a_grade_b_lead_without_consent_gets_no_touch_and_its_timeline_says_why_at_once():
    n = engine()
    d = n.on_scored(None, "ev1", scored(grade="B", consent=()), MONDAY_10_NY)
    assert d.consent_blocked == ["email"] and notes(d.state) == ["cadence not started on email: no marketing consent"]
    assert not d.state.cadence_active and n.next_due(d.state) is None
    _, later = run_until(n, d.state, MONDAY_10_NY + 60 * DAY)
    assert sent(later) == []


def test_a_lead_who_consented_to_email_only_gets_no_sms():
    n = engine()
    d = n.on_scored(None, "ev1", scored(grade="B", phone=PHONE, consent=("email",)), MONDAY_10_NY)
    assert notes(d.state) == ["cadence not started on sms: no marketing consent"]
    st, first = run_until(n, d.state, MONDAY_10_NY + 4 * DAY)
    assert {x.channel for x in sent(first)} == {"email"}
    d = n.on_scored(st, "ev2", scored(grade="B", kind="unsubscribed", channel="email", phone=PHONE, consent=("email",)),
                    MONDAY_10_NY + 4 * DAY)  # fmt: skip
    st, later = run_until(n, d.state, MONDAY_10_NY + 60 * DAY)
    assert sent(later) == []
    assert st.cadence_stop_reason == WAITING_FOR_CONSENT


def test_a_lead_who_consented_to_both_channels_goes_on_by_sms_after_unsubscribing_from_email():
    n = engine()
    d = n.on_scored(None, "ev1", scored(grade="B", phone=PHONE, consent=("email", "sms")), MONDAY_10_NY)
    d = n.on_scored(d.state, "ev2", scored(grade="B", kind="unsubscribed", channel="email", phone=PHONE),
                    MONDAY_10_NY)  # fmt: skip
    tick = n.on_tick(d.state, MONDAY_10_NY)
    assert [(x.channel, x.consent.basis, [c.value for c in x.consent.channels]) for x in tick.notifications] == [
        ("sms", "consent", ["email", "sms"])
    ]


def test_every_marketing_touch_carries_the_consent_it_rests_on():
    n = engine()
    d = n.on_scored(None, "ev1", scored(grade="B", consent=("email",)), MONDAY_10_NY)
    (touch,) = n.on_tick(d.state, MONDAY_10_NY).notifications
    assert touch.consent is not None
    assert (touch.consent.basis, touch.consent.capture_id, touch.consent.given_at) == (
        "consent", "cap-ld_1", MONDAY_10_NY,
    )  # fmt: skip


def test_consent_given_later_starts_the_held_cadence():
    n = engine()
    d = n.on_scored(None, "ev1", scored(grade="B", consent=()), MONDAY_10_NY)
    later = MONDAY_10_NY + 2 * DAY
    d = n.on_scored(d.state, "ev2", scored(grade="B", consent=("email",)), later)
    assert d.state.cadence_active and d.state.cadence_stop_reason is None
    tick = n.on_tick(d.state, later)
    assert [(x.template, x.channel) for x in tick.notifications] == [("nurture_content", "email")]


def test_a_team_configured_legitimate_interest_lets_marketing_email_go_in_that_country_only():
    n = engine(ConsentPolicy(legitimate_interest={"US": frozenset({"email"})}))
    us = n.on_scored(None, "ev1", scored("ld_us", grade="B", consent=(), phone=PHONE), MONDAY_10_NY)
    (touch,) = n.on_tick(us.state, MONDAY_10_NY).notifications
    assert (touch.channel, touch.consent.basis) == ("email", "legitimate_interest")
    assert notes(us.state) == ["cadence not started on sms: no marketing consent"]
    de = n.on_scored(None, "ev1", scored("ld_de", grade="B", consent=(), country="DE", tz="Europe/Berlin"),
                     MONDAY_10_NY)  # fmt: skip
    assert n.on_tick(de.state, MONDAY_10_NY).notifications == []


def test_no_legitimate_interest_is_configured_by_default():
    assert playbooks().consent.legitimate_interest == {}


def test_an_older_lead_scored_without_consent_per_channel_reads_its_marketing_consent_as_email_only():
    n = engine()
    data = scored(grade="B", phone=PHONE, consent=None)
    data = data.model_copy(update={"profile": data.profile.model_copy(update={"marketing_consent": True})})
    d = n.on_scored(None, "ev1", data, MONDAY_10_NY)
    assert [x.channel for x in n.on_tick(d.state, MONDAY_10_NY).notifications] == ["email"]
    assert notes(d.state) == ["cadence not started on sms: no marketing consent"]


def test_a_notifier_refusal_for_want_of_consent_does_not_suppress_the_address():
    n = engine()
    d = n.on_scored(None, "ev1", scored(grade="B"), MONDAY_10_NY)
    outcome = NotificationOutcome(
        notification_id="touch:ld_1:0:grade_b:0", lead_id="ld_1", status="suppressed", channel="email",
        audience="lead", attempts=0, completed_at=datetime(2026, 5, 4, 14, 1, tzinfo=UTC),
        error=NO_CONSENT_ERROR,
    )  # fmt: skip
    assert n.on_outcome(d.state, "o1", outcome, MONDAY_10_NY).state.suppressed_channels == []


def test_the_reason_is_noted_once_per_cadence_not_at_every_tick():
    n = engine()
    d = route_first(n, n.on_scored(None, "ev1", scored(grade="A", consent=()), MONDAY_10_NY), MONDAY_10_NY)
    d.absorb(n.on_tick(d.state, MONDAY_10_NY))
    d2 = n.on_scored(d.state, "ev2", scored(grade="A", consent=()), MONDAY_10_NY + DAY)
    assert d2.consent_blocked == [] and len(d2.state.consent_notes) == 1


@pytest.mark.parametrize(
    ("consent", "where"),
    [
        ({"legitimate_interest": {"US": ["fax"]}}, "consent.legitimate_interest.US"),
        ({"legitimate_interest": {"US": []}}, "consent.legitimate_interest.US"),
        ({"legitimate_interest": ["US"]}, "consent.legitimate_interest"),
        ({"transactional_templates": "lead_reply"}, "consent.transactional_templates"),
        ({"transactional_templates": ["rep_alert"]}, "consent.transactional_templates"),
    ],
)
def test_a_bad_consent_setting_is_named(consent: dict, where: str):
    import yaml

    data = yaml.safe_load((CONFIG / "playbooks.yaml").read_text()) | {"consent": consent}
    with pytest.raises(ConfigError) as err:
        parse_playbooks(data)
    assert err.value.where == where


def test_the_shipped_config_treats_the_reply_and_onboarding_as_transactional():
    policy = parse_consent_policy({"transactional_templates": ["lead_reply", "onboarding"]})
    assert playbooks().consent == policy
    assert not policy.is_marketing("lead_reply") and policy.is_marketing("weekly_checkin")


def test_unsubscribing_from_the_only_consented_channel_holds_the_cadence_at_once():
    n = engine()
    d = n.on_scored(None, "ev1", scored(grade="B", phone=PHONE, consent=("email",)), MONDAY_10_NY)
    d = n.on_scored(d.state, "ev2", scored(grade="B", kind="unsubscribed", channel="email", phone=PHONE,
                                           consent=("email",)), MONDAY_10_NY)  # fmt: skip
    assert d.state.cadence_stop_reason == WAITING_FOR_CONSENT and n.next_due(d.state) is None
