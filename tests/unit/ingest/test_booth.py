"""Booth exports as staff have them: columns, times, ratings, language, consent, batch keys."""

from __future__ import annotations

from datetime import UTC, datetime, time
from zoneinfo import ZoneInfo

import pytest

from schemas.base import BoothRating, Channel
from services.ingest.domain.booth import (
    RowProblem,
    ShowConfig,
    batch_key,
    detect_mapping,
    group_problems,
    header_row,
    load_zone,
    normalise_header,
    normalise_rating,
    parse_consent_basis,
    parse_scan_time,
    prepare_scans,
    visitor_language,
)
from services.ingest.domain.errors import InvalidInput
from services.ingest.domain.scans import build_captures, parse_batch

LISBON = ZoneInfo("Europe/Lisbon")
SHANGHAI = ZoneInfo("Asia/Shanghai")


# ---- columns -------------------------------------------------------------------------------
def test_header_case_spaces_and_punctuation_do_not_matter():
    assert normalise_header("  E-Mail_Address ") == "e mail address"
    assert normalise_header("国家/地区") == "国家地区"
    assert normalise_header("ＥＭＡＩＬ") == "email"  # full-width, as Chinese keyboards type it


def test_a_badge_scanner_export_header_is_recognised_without_a_map():
    columns = ["Badge ID", "First Name", "Last Name", "Company", "Job Title", "Email", "Phone", "Country",
               "Lead Rating", "Notes", "Scan Time"]  # fmt: skip
    m = detect_mapping(columns)
    assert dict(m.fields) == {
        "Badge ID": "badge_id", "First Name": "first_name", "Last Name": "last_name", "Company": "company",
        "Job Title": "job_title", "Email": "email", "Phone": "phone", "Country": "country",
        "Lead Rating": "rating", "Notes": "notes", "Scan Time": "scanned_at",
    }  # fmt: skip
    assert m.unrecognised == () and not m.ignored


def test_chinese_column_names_are_recognised():
    m = detect_mapping(["胸卡号", "姓名", "公司", "职位", "手机", "邮箱", "国家/地区", "意向", "备注", "扫描时间"])
    assert list(m.fields.values()) == [
        "badge_id", "full_name", "company", "job_title", "phone", "email", "country", "rating", "notes", "scanned_at"
    ]  # fmt: skip


def test_other_vendors_words_for_the_same_fields_are_recognised():
    m = detect_mapping(
        ["Registration Code", "Organisation", "Position", "E-mail", "Mobile", "Temperature", "Timestamp"]
    )
    assert list(m.fields.values()) == ["badge_id", "company", "job_title", "email", "phone", "rating", "scanned_at"]


def test_a_title_line_above_the_header_is_skipped():
    lines = [["Exported by BoothScan Pro", None], [], ["Registration Code", "Surname", "Timestamp"], ["R1", "Li", "x"]]
    assert header_row(lines) == 2
    assert header_row([[], ["Foo", "Bar"], ["1", "2"]]) == 1  # nothing recognised: the first line with text


def test_an_unrecognised_column_is_kept_as_an_answer_and_reported():
    m = detect_mapping(["Badge", "Scan Time", "Product Interest"])
    assert m.fields["Product Interest"] == "answers.product_interest"
    assert m.unrecognised == ("Product Interest",)


def test_a_second_column_for_a_field_already_taken_is_ignored_not_overwriting_the_first():
    m = detect_mapping(["Email", "E-mail Address", "Badge"])
    assert m.fields == {"Email": "email", "Badge": "badge_id"}
    assert m.ignored == {"E-mail Address": "email already comes from 'Email'"}


def test_a_scan_date_and_a_scan_time_in_two_columns_make_one_scan_time():
    m = detect_mapping(["Badge", "Scan Date", "Scan Time", "Created"])
    assert m.fields == {"Badge": "badge_id", "Scan Date": "scanned_at", "Scan Time": "scanned_at"}
    assert m.ignored == {"Created": "scanned_at already comes from 'Scan Date'"}
    rows = [
        {"Badge": "B1", "Scan Date": "2026-11-03", "Scan Time": "14:05"},
        {"Badge": "B2", "Scan Date": "03/11/2026", "Scan Time": "2:05 PM"},
        {"Badge": "B3", "Scan Date": datetime(2026, 11, 3), "Scan Time": time(14, 5)},  # Excel cells
        {"Badge": "B4", "Scan Date": "2026-11-03 16:00", "Scan Time": "14:05"},  # a full time wins
    ]
    prepared = prepare_scans(rows, m, LISBON)
    assert [s.scan["scanned_at"] for s in prepared.scans] == ["2026-11-03T14:05:00+00:00"] * 3 + [
        "2026-11-03T16:00:00+00:00"
    ]


def test_map_overrides_the_vocabulary_and_can_ignore_a_column():
    m = detect_mapping(
        ["Badge", "Date", "Scanned", "Fax"], {"Scanned": "scanned_at", "Date": "answers.visit_day", "fax": "ignore"}
    )
    assert m.fields == {"Badge": "badge_id", "Date": "answers.visit_day", "Scanned": "scanned_at"}
    assert m.ignored == {"Fax": "--map says ignore"}


def test_a_map_naming_a_column_the_file_does_not_have_is_refused_naming_the_column():
    with pytest.raises(InvalidInput) as err:
        detect_mapping(["Badge", "Scan Time"], {"Scan Tme": "scanned_at"})
    [problem] = err.value.problems
    assert problem.field == "--map" and "'Scan Tme' is not in the file" in problem.problem
    assert "Badge, Scan Time" in problem.problem


def test_a_map_to_a_field_scans_do_not_have_is_refused_naming_the_field():
    with pytest.raises(InvalidInput, match="'scaned_at' is not a scan field"):
        detect_mapping(["Badge", "Scan Time"], {"Scan Time": "scaned_at"})


# ---- times ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("value", "expected_utc"),
    [
        ("2026-11-03 14:05", "2026-11-03T14:05:00+00:00"),  # Lisbon is on UTC in November
        ("03/11/2026 14:05", "2026-11-03T14:05:00+00:00"),
        ("2026/11/03 14:05:30", "2026-11-03T14:05:30+00:00"),
        ("2026年11月3日 14:05", "2026-11-03T14:05:00+00:00"),
        ("03.11.2026 2:05 PM", "2026-11-03T14:05:00+00:00"),
        ("2026-07-03 14:05", "2026-07-03T13:05:00+00:00"),  # summer time: UTC+1
        (datetime(2026, 11, 3, 14, 5), "2026-11-03T14:05:00+00:00"),  # an Excel datetime cell
        (46329.586805555555, "2026-11-03T14:05:00+00:00"),  # an Excel serial number
        ("2026-11-03T14:05:00+08:00", "2026-11-03T06:05:00+00:00"),  # an offset wins over the zone
    ],
)
def test_local_scan_times_are_read_in_the_shows_time_zone(value: object, expected_utc: str):
    assert parse_scan_time(value, LISBON).astimezone(UTC).isoformat() == expected_utc


def test_month_first_dates_are_read_month_first_when_the_file_shows_it():
    rows = [{"Badge": "B1", "When": "11/03/2026 14:05"}, {"Badge": "B2", "When": "11/23/2026 09:00"}]
    prepared = prepare_scans(rows, detect_mapping(["Badge", "When"], {"When": "scanned_at"}), LISBON)
    assert prepared.scans[0].scan["scanned_at"] == "2026-11-03T14:05:00+00:00"
    assert not prepared.guessed_day_first


def test_ambiguous_slash_dates_are_read_day_first_and_say_so():
    rows = [{"Badge": "B1", "Scan Time": "03/11/2026 14:05"}]
    prepared = prepare_scans(rows, detect_mapping(["Badge", "Scan Time"]), LISBON)
    assert prepared.scans[0].scan["scanned_at"] == "2026-11-03T14:05:00+00:00"
    assert prepared.guessed_day_first


def test_naive_times_without_a_time_zone_are_refused_with_a_hint_naming_timezone():
    rows = [{"Badge": "B1", "Scan Time": "2026-11-03 14:05"}]
    with pytest.raises(InvalidInput) as err:
        prepare_scans(rows, detect_mapping(["Badge", "Scan Time"]), None)
    [problem] = err.value.problems
    assert problem.field == "--timezone" and "row 2, column 'Scan Time'" in problem.problem


def test_times_with_an_offset_need_no_time_zone():
    rows = [{"Badge": "B1", "Scan Time": "2026-11-03T14:05:00Z"}]
    [scan] = prepare_scans(rows, detect_mapping(["Badge", "Scan Time"]), None).scans
    assert scan.scan["scanned_at"] == "2026-11-03T14:05:00+00:00"


def test_an_unknown_time_zone_is_refused_naming_the_option():
    with pytest.raises(InvalidInput) as err:
        load_zone("Europe/Lisbn")
    [problem] = err.value.problems
    assert problem.field == "--timezone" and "'Europe/Lisbn' is not a known time zone" in problem.problem


# ---- ratings, language ----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("raw", "rating"),
    [
        ("Hot", BoothRating.HOT), ("WARM", BoothRating.WARM), ("cold", BoothRating.COLD),
        ("A", BoothRating.HOT), ("b", BoothRating.WARM), ("C", BoothRating.COLD), ("D", BoothRating.COLD),
        ("5", BoothRating.HOT), (4, BoothRating.HOT), (3.0, BoothRating.WARM), ("2", BoothRating.COLD), ("1", BoothRating.COLD),
        ("热", BoothRating.HOT), ("温", BoothRating.WARM), ("冷", BoothRating.COLD),
        ("高", BoothRating.HOT), ("中", BoothRating.WARM), ("低", BoothRating.COLD), ("A类", BoothRating.HOT),
    ],
)  # fmt: skip
def test_booth_ratings_on_any_common_scale_become_hot_warm_or_cold(raw: object, rating: BoothRating):
    assert normalise_rating(raw) is rating


def test_a_rating_on_no_known_scale_is_kept_as_an_answer_and_the_scan_still_goes():
    rows = [{"Badge": "B1", "Scan Time": "2026-11-03 14:05", "Rating": "follow up?"}]
    prepared = prepare_scans(rows, detect_mapping(["Badge", "Scan Time", "Rating"]), LISBON)
    [scan] = prepared.scans
    assert "rating" not in scan.scan and scan.scan["answers"] == {"rating": "follow up?"}
    assert prepared.problems == [RowProblem(2, "rating", "not a known rating (kept as an answer)", sent=True)]


def test_a_visitor_from_china_is_answered_in_simplified_chinese():
    assert visitor_language("CN") == "zh-CN"
    assert visitor_language("中国") == "zh-CN"
    assert visitor_language("China") == "zh-CN"


def test_a_visitor_with_a_chinese_title_or_name_is_answered_in_simplified_chinese():
    assert visitor_language(None, "技术总监") == "zh-CN"
    assert visitor_language("DE", None, "王伟") == "zh-CN"


def test_a_japanese_visitor_writing_kanji_is_not_taken_for_a_chinese_speaker():
    assert visitor_language("JP", "部長") is None
    assert visitor_language(None, "マーケティング部長") is None


def test_a_language_the_export_states_wins_and_nothing_is_guessed_without_a_sign():
    assert visitor_language("CN", language="en") == "en"
    assert visitor_language("PT", "CTO", "Ana Silva") is None


# ---- rows -----------------------------------------------------------------------------------
def test_rows_without_email_are_sent_and_rows_without_badge_or_time_are_not():
    rows = [
        {"Badge ID": "B1", "Email": "", "Scan Time": "2026-11-03 14:05"},
        {"Badge ID": "", "Email": "x@example.com", "Scan Time": "2026-11-03 14:06"},
        {"Badge ID": "B3", "Email": "y@example.com", "Scan Time": "tomorrow"},
        {"Badge ID": None, "Email": None, "Scan Time": None},  # a blank line at the end of the export
    ]
    prepared = prepare_scans(rows, detect_mapping(["Badge ID", "Email", "Scan Time"]), LISBON)
    assert [s.row for s in prepared.scans] == [2]
    assert prepared.scans[0].scan == {"badge_id": "B1", "scanned_at": "2026-11-03T14:05:00+00:00"}
    assert [(p.row, p.field, p.kind) for p in prepared.problems] == [
        (3, "badge_id", "empty"), (4, "scanned_at", "not a date and time")
    ]  # fmt: skip


def test_a_badge_number_stored_as_a_number_by_a_spreadsheet_stays_a_whole_number():
    rows = [{"Badge": 12345.0, "Scan Time": datetime(2026, 11, 3, 14, 5)}]
    [scan] = prepare_scans(rows, detect_mapping(["Badge", "Scan Time"]), LISBON).scans
    assert scan.scan["badge_id"] == "12345"


def test_problems_are_grouped_one_line_per_kind_with_count_and_first_rows():
    problems = [RowProblem(r, "scanned_at", "empty", sent=False) for r in (9, 3, 4, 5, 6, 7, 8)]
    problems.append(RowProblem(11, "rating", "not a known rating (kept as an answer)", sent=True))
    lines = [line.render() for line in group_problems(problems)]
    assert lines == [
        "scanned_at: empty - 7 rows, not sent: rows 3, 4, 5, 6, 7 (+2 more)",
        "rating: not a known rating (kept as an answer) - 1 row, sent without it: row 11",
    ]


# ---- batch keys -----------------------------------------------------------------------------
def test_a_batch_key_follows_the_content_so_a_corrected_batch_gets_a_new_key():
    body = {"show_id": "s", "booth": "B12", "scans": [{"badge_id": "B1", "scanned_at": "2026-11-03T14:05:00+00:00"}]}
    corrected = body | {"scans": [{"badge_id": "B1", "scanned_at": "2026-11-03T14:05:00+00:00", "rating": "hot"}]}
    assert batch_key(body) == batch_key(dict(reversed(body.items())))  # same content, same key
    assert batch_key(body) != batch_key(corrected)
    assert batch_key(body) != batch_key(body | {"booth": "B13"})


# ---- consent and shows ----------------------------------------------------------------------
def test_a_consent_basis_names_its_channels():
    assert parse_consent_basis("email+sms").channels == (Channel.EMAIL, Channel.SMS)
    assert parse_consent_basis("none").channels == ()


def test_an_unknown_consent_basis_is_refused():
    with pytest.raises(InvalidInput, match="'yes' is not none, email"):
        parse_consent_basis("yes")


def batch_with(consent: dict[str, str] | None) -> dict[str, object]:
    scan = {"badge_id": "B1", "scanned_at": "2026-11-03T14:05:00+00:00", "country": "CN"}
    return {"device_id": "d", "show_id": "s", "booth": "B12", "scans": [scan]} | (
        {"consent": consent} if consent else {}
    )


def test_scans_carry_the_shows_consent_basis_as_form_consent_is_carried():
    batch = parse_batch(batch_with({"basis": "email", "text": "We may email you.", "version": "v3"}))
    [good], _ = build_captures(batch, batch_id="b")
    consent = good.capture.consent
    assert consent is not None and consent.marketing and consent.channels == (Channel.EMAIL,)
    assert consent.text_shown == "We may email you.\n[consent text version v3]"
    assert consent.text_version == "v3"  # the version the show configured
    assert consent.given_at == datetime(2026, 11, 3, 14, 5, tzinfo=UTC)


def test_scans_with_no_consent_basis_carry_no_consent_at_all():
    for consent in (None, {"basis": "none"}):
        [good], _ = build_captures(parse_batch(batch_with(consent)), batch_id="b")
        assert good.capture.consent is None


def test_a_scan_from_china_is_captured_with_language_zh_cn():
    [good], _ = build_captures(parse_batch(batch_with(None)), batch_id="b")
    assert good.capture.person.language == "zh-CN"


def test_a_show_needs_a_time_zone_and_a_consent_basis():
    with pytest.raises(InvalidInput) as err:
        ShowConfig.from_mapping({"id": "s", "timezone": "Mars/Olympus"})
    assert {p.field for p in err.value.problems} == {"timezone", "consent.basis"}
    show = ShowConfig.from_mapping({"id": "s", "timezone": "Asia/Shanghai", "consent": {"basis": "email", "text": "t"}})
    assert show.consent.channels == (Channel.EMAIL,)
