"""Working-time arithmetic: sending windows and working hours in a person's own time zone."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


@dataclass(frozen=True, slots=True)
class Window:
    """Weekly open hours: ``days`` are ISO weekdays 0=Mon..6=Sun, ``start``-``end`` local time."""

    days: frozenset[int] = frozenset({0, 1, 2, 3, 4})
    start: time = time(9, 0)
    end: time = time(18, 0)

    def is_working_day(self, day: date) -> bool:
        return day.weekday() in self.days


def zone(name: str | None, default: str = "UTC") -> ZoneInfo:
    """The named time zone, else ``default`` (an unknown name never stops a touch)."""
    for candidate in (name, default, "UTC"):
        if candidate:
            try:
                return ZoneInfo(candidate)
            except (ZoneInfoNotFoundError, ValueError):
                continue
    return ZoneInfo("UTC")


def _local(at: datetime, tz: ZoneInfo) -> datetime:
    return at.astimezone(tz)


def is_open(at: datetime, tz: ZoneInfo, window: Window) -> bool:
    local = _local(at, tz)
    return window.is_working_day(local.date()) and window.start <= local.time() < window.end


def next_open(at: datetime, tz: ZoneInfo, window: Window) -> datetime:
    """``at`` if the window is open then, else the next moment it opens (in UTC)."""
    if is_open(at, tz, window):
        return at
    local = _local(at, tz)
    day = local.date()
    if window.is_working_day(day) and local.time() < window.start:
        return datetime.combine(day, window.start, tz).astimezone(UTC)
    for _ in range(14):
        day += timedelta(days=1)
        if window.is_working_day(day):
            return datetime.combine(day, window.start, tz).astimezone(UTC)
    raise ValueError("window: no working day in two weeks (days must not be empty)")


def add_working_time(at: datetime, duration: timedelta, tz: ZoneInfo, window: Window) -> datetime:
    """The moment ``duration`` of open time has passed after ``at`` (nights and weekends skipped)."""
    remaining = duration
    cursor = next_open(at, tz, window)
    while True:
        local = _local(cursor, tz)
        close = datetime.combine(local.date(), window.end, tz).astimezone(UTC)
        available = close - cursor
        if remaining <= available:
            return cursor + remaining
        remaining -= available
        cursor = next_open(close, tz, window)


def first_working_day_after(day: date, window: Window) -> date:
    nxt = day + timedelta(days=1)
    for _ in range(14):
        if window.is_working_day(nxt):
            return nxt
        nxt += timedelta(days=1)
    raise ValueError("window: no working day in two weeks (days must not be empty)")


def at_local(day: date, clock: time, tz: ZoneInfo) -> datetime:
    return datetime.combine(day, clock, tz).astimezone(UTC)


def parse_zone_name(name: str) -> ZoneInfo | None:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None
