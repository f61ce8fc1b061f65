from __future__ import annotations

from services.scoring.domain.enrichment import normalise_country, timezone_for
from services.scoring.domain.titles import read_title
from tests.unit.scoring.leads import capture, scored


def test_a_gmail_address_is_free_mail_and_says_nothing_about_the_company():
    result = scored(capture(email="dana@gmail.com"))
    assert result.profile.email_kind == "free" and result.profile.company_domain is None


def test_a_corporate_address_finds_the_company_in_the_firmographics_file():
    profile = scored(capture(email="dana@example.com")).profile
    assert (profile.company, profile.industry, profile.employees) == ("Example Corp", "software", 500)


def test_a_subdomain_address_finds_its_parent_company():
    assert scored(capture(email="ops@eu.example.com")).profile.company == "Example Corp"


def test_a_phone_number_gives_country_and_time_zone_when_the_form_has_no_country():
    profile = scored(capture(email="li@gmail.com", phone="+86 138 0013 8000", country=None)).profile
    assert profile.country == "CN" and profile.timezone == "Asia/Shanghai" and profile.in_served_area is True


def test_an_unknown_country_is_neither_inside_nor_outside_the_served_area():
    assert scored(capture(email="a@gmail.com", country=None)).profile.in_served_area is None


def test_country_names_in_english_and_chinese_are_understood():
    assert [normalise_country(c) for c in ("Germany", "中国", "us", "Narnia")] == ["DE", "CN", "US", None]


def test_a_country_without_a_phone_still_gives_a_time_zone():
    assert timezone_for(None, "DE") == "Europe/Berlin"


def test_titles_give_seniority_in_english():
    got = [read_title(t).seniority for t in ("VP of Sales", "Head of Operations", "Director, IT", "Sales Manager")]
    assert got == ["vp", "head", "director", "manager"]


def test_titles_give_seniority_in_chinese():
    got = [read_title(t).seniority for t in ("首席执行官", "副总裁", "销售总监", "采购经理", "市场部负责人", "实习生")]
    assert got == ["c_level", "vp", "director", "manager", "head", "student"]


def test_titles_give_the_role():
    got = [read_title(t).role for t in ("VP Engineering", "采购经理", "Head of Marketing", "财务总监")]
    assert got == ["engineering", "procurement", "marketing", "finance"]


def test_an_assistant_to_a_director_is_not_a_director():
    assert read_title("Assistant to the Director").seniority == "individual"


def test_a_title_that_says_nothing_is_unknown_rather_than_guessed():
    assert read_title("Dana").seniority is None and read_title(None).role is None
