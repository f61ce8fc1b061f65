"""Whose nurture state an erasure request names."""

from services.nurture.domain.erasure import is_subject_of_erasure
from services.nurture.domain.state import LeadState, LeadView


def state(lead_id: str, email: str | None = None, phone: str | None = None) -> LeadState:
    return LeadState(lead_id=lead_id, lead=LeadView(email=email, phone=phone))


def test_a_lead_is_the_persons_when_its_email_matches_whatever_the_case():
    assert is_subject_of_erasure(state("a", "Dana@Example.com"), email=" dana@example.com", phone=None, lead_ids=())


def test_a_lead_is_the_persons_when_its_phone_matches_in_any_notation():
    assert is_subject_of_erasure(state("a", phone="+1 415-555-0100"), email=None, phone="+14155550100", lead_ids=())


def test_a_named_lead_id_is_the_persons():
    assert is_subject_of_erasure(state("ld_1"), email=None, phone=None, lead_ids=("ld_1",))


def test_another_persons_lead_is_not_touched():
    other = state("b", "sam@example.com", "+14155550199")
    assert not is_subject_of_erasure(other, email="dana@example.com", phone="+14155550100", lead_ids=("ld_1",))
