"""Maintenance windows: local days and hours in a time zone, DST included (ADR 0094)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from outpost_contracts.errors import ValidationFailed
from outpost_contracts.firmware import MaintenanceWindow, Weekday
from outpost_fleet.domain.windows import check, is_open, next_opening

pytestmark = pytest.mark.unit
PARIS = ZoneInfo("Europe/Paris")
W = Weekday


def window(
    days: list[Weekday], start: str, end: str, tz: str = "Europe/Paris"
) -> MaintenanceWindow:
    return MaintenanceWindow(days=days, start=start, end=end, timezone=tz)


def paris(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=PARIS)


def test_a_daytime_window_opens_on_its_days_in_local_time() -> None:
    w = window([W.TUE, W.THU], "02:00", "05:00")
    # 2026-12-08 is a Tuesday; Paris is UTC+1 in December
    assert is_open(w, paris(2026, 12, 8, 2, 0), PARIS)
    assert is_open(w, paris(2026, 12, 8, 4, 59), PARIS)
    assert not is_open(w, paris(2026, 12, 8, 5, 0), PARIS)
    assert not is_open(w, paris(2026, 12, 8, 1, 59), PARIS)
    assert not is_open(w, paris(2026, 12, 9, 3, 0), PARIS)  # Wednesday
    assert is_open(w, datetime(2026, 12, 8, 1, 30, tzinfo=UTC), PARIS)  # 02:30 in Paris


def test_a_window_past_midnight_belongs_to_the_day_it_opens() -> None:
    w = window([W.FRI], "22:00", "04:00")
    assert is_open(w, paris(2026, 12, 11, 23, 0), PARIS)  # Friday night
    assert is_open(w, paris(2026, 12, 12, 3, 59), PARIS)  # Saturday morning
    assert not is_open(w, paris(2026, 12, 12, 23, 0), PARIS)  # Saturday night
    assert not is_open(w, paris(2026, 12, 11, 3, 0), PARIS)  # Friday morning (Thursday's)


def test_the_window_follows_the_wall_clock_across_daylight_saving() -> None:
    w = window(list(W), "03:00", "04:00")
    # 2026-03-29: Paris moves from UTC+1 to UTC+2 at 02:00 local
    assert is_open(w, datetime(2026, 3, 28, 2, 30, tzinfo=UTC), PARIS)  # 03:30 CET
    assert is_open(w, datetime(2026, 3, 29, 1, 30, tzinfo=UTC), PARIS)  # 03:30 CEST
    assert not is_open(w, datetime(2026, 3, 29, 2, 30, tzinfo=UTC), PARIS)  # 04:30 CEST


def test_no_window_is_always_open() -> None:
    assert is_open(None, paris(2026, 12, 8), PARIS)
    now = paris(2026, 12, 8)
    assert next_opening(None, now, PARIS) == now


def test_next_opening_is_when_the_scheduler_looks_again() -> None:
    w = window([W.SUN], "01:00", "02:00", "UTC")
    now = datetime(2026, 12, 7, 12, tzinfo=UTC)  # Monday noon
    assert next_opening(w, now, UTC) == datetime(2026, 12, 13, 1, tzinfo=UTC)
    inside = datetime(2026, 12, 13, 1, 30, tzinfo=UTC)
    assert next_opening(w, inside, UTC) == inside


@pytest.mark.parametrize(
    ("w", "field"),
    [
        (window([], "01:00", "02:00"), "maintenanceWindow.days"),
        (window([W.MON, W.MON], "01:00", "02:00"), "maintenanceWindow.days"),
        (window([W.MON], "01:00", "01:00"), "maintenanceWindow.end"),
    ],
)
def test_a_bad_window_is_a_validation_error(w: MaintenanceWindow, field: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        check(w)
    assert caught.value.fields[0].name == field


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.sampled_from(list(W)), min_size=1, max_size=7, unique=True),
    st.integers(0, 23),
    st.integers(0, 23),
    st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2028, 1, 1)),
    st.sampled_from(["UTC", "Europe/Paris", "America/New_York", "Asia/Kolkata"]),
)
def test_next_opening_is_open_and_nothing_before_it_is(
    days: list[Weekday], start: int, end: int, naive: datetime, tz: str
) -> None:
    if start == end:
        return
    zone = ZoneInfo(tz)
    w = window(days, f"{start:02d}:00", f"{end:02d}:00", tz)
    now = naive.replace(tzinfo=UTC)
    opens = next_opening(w, now, zone)
    assert opens >= now and opens - now <= timedelta(days=8)
    assert is_open(w, opens, zone)
    # half-hour probes between now and the opening are all closed
    probe = now
    while probe < opens - timedelta(minutes=30):
        assert not is_open(w, probe, zone)
        probe += timedelta(minutes=30)
