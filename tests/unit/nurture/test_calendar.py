from datetime import UTC, date, datetime, timedelta

from services.nurture.domain.calendar import Window, add_working_time, first_working_day_after, next_open, zone

NY = zone("America/New_York")
W = Window()


def test_a_moment_inside_the_window_is_sent_as_it_is():
    monday_10 = datetime(2026, 5, 4, 14, 0, tzinfo=UTC)
    assert next_open(monday_10, NY, W) == monday_10


def test_friday_evening_in_the_leads_zone_defers_to_monday_nine_local():
    friday_19_ny = datetime(2026, 5, 8, 23, 0, tzinfo=UTC)
    assert next_open(friday_19_ny, NY, W) == datetime(2026, 5, 11, 13, 0, tzinfo=UTC)


def test_early_morning_defers_to_nine_the_same_day():
    tuesday_7_ny = datetime(2026, 5, 5, 11, 0, tzinfo=UTC)
    assert next_open(tuesday_7_ny, NY, W) == datetime(2026, 5, 5, 13, 0, tzinfo=UTC)


def test_the_same_utc_moment_is_open_in_one_zone_and_closed_in_another():
    moment = datetime(2026, 5, 4, 8, 0, tzinfo=UTC)  # 10:00 Paris, 04:00 New York
    assert next_open(moment, zone("Europe/Paris"), W) == moment
    assert next_open(moment, NY, W) > moment


def test_sla_minutes_count_only_working_time():
    friday_1755_ny = datetime(2026, 5, 8, 21, 55, tzinfo=UTC)
    assert add_working_time(friday_1755_ny, timedelta(minutes=15), NY, W) == datetime(2026, 5, 11, 13, 10, tzinfo=UTC)


def test_first_working_day_after_a_friday_show_is_monday():
    assert first_working_day_after(date(2026, 5, 8), W) == date(2026, 5, 11)
    assert first_working_day_after(date(2026, 5, 5), W) == date(2026, 5, 6)


def test_an_unknown_time_zone_falls_back_to_the_default():
    assert zone("Mars/Olympus", "Europe/Paris").key == "Europe/Paris"
