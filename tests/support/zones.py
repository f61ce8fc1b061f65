"""Time zones for tests that run on the real clock and count per local day.

A rep's daily capacity counts per day in the rep's time zone (``Rep.local_day``). A test that
fills a capacity on the real clock, with reps in UTC, would see the places free again if it ran
across UTC midnight, and fail at that hour only. Such a test gives its reps ``zone_at_midday()``.
"""

from __future__ import annotations

from datetime import UTC, datetime


def zone_at_midday(now: datetime | None = None) -> str:
    """A fixed-offset IANA zone (``Etc/GMT±N``) where it is now between 12:00 and 12:59, so the
    local day has more than 11 hours left, whenever the test runs. In ``Etc/GMT`` names the sign
    is POSIX's: ``Etc/GMT-3`` is three hours ahead of UTC."""
    hour = (now or datetime.now(UTC)).astimezone(UTC).hour
    ahead = 12 - hour  # -11 .. +12 hours, all of them zones that exist
    return "UTC" if ahead == 0 else f"Etc/GMT{-ahead:+d}"
