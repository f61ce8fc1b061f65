"""``tests.support.zones``: the zone a real-clock capacity test gives its reps."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from services.nurture.domain.calendar import parse_zone_name
from tests.support.zones import zone_at_midday


@pytest.mark.parametrize("hour", range(24))
def test_it_is_midday_there_at_every_hour_of_the_utc_day(hour: int):
    now = datetime(2026, 11, 28, hour, 59, 59, tzinfo=UTC)
    zone = zone_at_midday(now)
    assert parse_zone_name(zone) is not None, zone  # the directory accepts it
    local = now.astimezone(ZoneInfo(zone))
    assert local.hour == 12, (zone, local)
    assert (now + timedelta(hours=11)).astimezone(ZoneInfo(zone)).date() == local.date()


def test_a_time_given_in_another_zone_counts_by_its_utc_hour():
    at = datetime(2026, 11, 28, 23, 30, tzinfo=ZoneInfo("Etc/GMT-3"))  # 20:30 UTC
    assert zone_at_midday(at) == "Etc/GMT+8"  # 12:30 there
