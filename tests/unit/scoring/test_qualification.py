from __future__ import annotations

from services.scoring.domain.qualification import (
    asks_long_payment_terms,
    authority_answer,
    means_answer,
    need_answer,
    urgency_answer,
)
from tests.unit.scoring.leads import capture, fired, scored


def test_a_stated_need_is_a_yes_and_no_need_is_a_no():
    assert [need_answer(t) for t in ("replace spreadsheets", "no need", "没有", None)] == ["yes", "no", "no", "unknown"]


def test_an_urgent_timeline_in_english_or_chinese_is_urgent():
    assert [urgency_answer(t) for t in ("ASAP", "this quarter", "本月", "尽快")] == ["yes"] * 4


def test_a_distant_timeline_is_not_urgent():
    assert [urgency_answer(t) for t in ("next year", "12 months", "明年", "just looking")] == ["no"] * 4


def test_a_budget_amount_means_they_can_pay_and_no_budget_means_they_cannot():
    assert means_answer("50k USD", None, 200) == "yes" and means_answer("no budget", 5000, 200) == "no"


def test_without_a_budget_answer_a_large_company_can_pay():
    assert means_answer(None, 800, 200) == "yes" and means_answer(None, 20, 200) == "unknown"


def test_a_decision_maker_has_authority_and_an_influencer_does_not():
    assert authority_answer("decision maker", None) == "yes"
    assert authority_answer("I recommend, my boss decides", "vp") == "no"
    assert authority_answer("决策人", None) == "yes"


def test_without_an_answer_a_senior_title_implies_authority():
    assert authority_answer(None, "director") == "yes" and authority_answer(None, "individual") == "no"


def test_asking_for_net_90_is_asking_for_long_payment_terms():
    assert asks_long_payment_terms("50k, net 90") and asks_long_payment_terms("需要账期")
    assert not asks_long_payment_terms("50k upfront")


def test_long_payment_terms_in_the_notes_are_a_negative_signal():
    result = scored(capture(notes=["wants net 120 terms"]))
    assert "negative.payment_terms" in fired(result)


def test_the_summary_reports_each_of_need_means_authority_and_urgency():
    q = scored(capture(title="VP Ops", need="a tool", budget="no budget", timeline="someday")).qualification
    assert (q.need, q.means, q.authority, q.urgency) == ("yes", "no", "yes", "no")
