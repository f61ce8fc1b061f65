"""The visitor's language from the browser's Accept-Language header."""

from __future__ import annotations

import pytest

from services.ingest.domain.errors import InvalidInput
from services.ingest.domain.forms import FormConfig, Submitter, build_capture
from services.ingest.domain.languages import preferred_language
from tests.unit.ingest.test_rules import CONFIG, NOW

WE_WRITE = ("en", "zh-CN")


def lang(header: str | None) -> str | None:
    return preferred_language(header, WE_WRITE, "en")


@pytest.mark.parametrize("header", ["zh", "zh-CN", "zh-cn", "zh-Hans", "zh-Hans-CN", "zh_CN", "zh-SG"])
def test_chinese_in_simplified_characters_is_zh_cn(header: str):
    assert lang(header) == "zh-CN"


def test_the_highest_quality_value_wins_not_the_first_listed():
    assert lang("en;q=0.5, zh-CN;q=0.9") == "zh-CN"
    assert lang("zh-CN;q=0.4, en-GB;q=0.8, en;q=0.7") == "en"


def test_equal_quality_values_keep_the_browsers_order():
    assert lang("zh-CN, en") == "zh-CN" and lang("en-US, zh") == "en"


def test_a_language_refused_with_q_zero_is_never_chosen():
    assert lang("zh-CN;q=0, en;q=0.1") == "en"


def test_traditional_chinese_is_not_written_so_the_next_preference_decides():
    assert lang("zh-TW, zh;q=0.8, en;q=0.5") == "zh-CN"
    assert lang("zh-Hant-HK, en;q=0.5") == "en"


def test_a_regional_variant_falls_back_to_its_language():
    assert lang("en-AU") == "en"


@pytest.mark.parametrize("header", ["fr-FR, de;q=0.9", "*", "ja;q=0.9, *;q=0.1", "zh-TW", "xx;q=abc"])
def test_a_browser_asking_for_nothing_we_write_gets_the_default(header: str):
    assert lang(header) == "en"


def test_malformed_weights_are_skipped_not_guessed():
    assert lang("zh-CN;q=high, en;q=0.3") == "en"
    assert lang("zh-CN;q=2, en;q=0.3") == "en"
    assert lang(" , ;q=1, zh ") == "zh-CN"


def test_no_header_says_nothing_about_the_visitor():
    assert lang(None) is None and lang("  ") is None


def browser(header: str | None) -> Submitter:
    return Submitter("1.2.3.4", "UA", accept_language=header)


def test_a_form_without_a_language_field_records_the_browsers_language():
    c = build_capture(CONFIG, {"email": "a@example.com", "name": "Ann"}, capture_id="c1", now=NOW,
                      submitter=browser("zh-CN,zh;q=0.9,en;q=0.8"))  # fmt: skip
    assert c.person.language == "zh-CN"


def test_a_language_the_visitor_chose_on_the_form_beats_the_browser():
    config = FormConfig.from_mapping({"id": "f", "fields": {"email": "identity.email", "lang": "person.language"}})
    chosen = build_capture(config, {"email": "a@example.com", "lang": "en"}, capture_id="c1", now=NOW,
                           submitter=browser("zh-CN"))  # fmt: skip
    left_empty = build_capture(config, {"email": "a@example.com", "lang": ""}, capture_id="c2", now=NOW,
                               submitter=browser("zh-CN"))  # fmt: skip
    assert chosen.person.language == "en" and left_empty.person.language == "zh-CN"


def test_a_form_sets_the_languages_it_writes_and_its_default():
    config = FormConfig.from_mapping({"id": "f", "fields": {"email": "identity.email"}, "languages": ["de", "en"],
                                      "default_language": "de"})  # fmt: skip
    c = build_capture(config, {"email": "a@example.com"}, capture_id="c1", now=NOW, submitter=browser("fr, en;q=0.5"))
    assert c.person.language == "en"
    c = build_capture(config, {"email": "a@example.com"}, capture_id="c2", now=NOW, submitter=browser("fr"))
    assert c.person.language == "de"


def test_a_default_language_the_form_does_not_write_is_refused_naming_it():
    with pytest.raises(InvalidInput) as err:
        FormConfig.from_mapping({"id": "f", "fields": {}, "languages": ["en"], "default_language": "fr"})
    assert err.value.problems[0].field == "default_language"
