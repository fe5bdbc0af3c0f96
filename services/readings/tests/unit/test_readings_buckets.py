"""Bucket arithmetic (domain/buckets.py) against a minute-by-minute scan of the definition,
across DST changes and half-hour offsets, and the query limits."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4
from zoneinfo import ZoneInfo

import pytest

from outpost_readings.domain import buckets as b
from outpost_readings.domain.buckets import Interval

pytestmark = pytest.mark.unit


def _scan(tz: ZoneInfo, n: int, lo: datetime, hi: datetime) -> list[datetime]:
    """Bucket starts in [lo, hi) by the definition, checked at every whole minute: the wall
    time is on a slot boundary, or its slot differs from the previous second's."""
    out = []
    t = lo
    while t < hi:
        wall = int(t.timestamp()) + int(t.astimezone(tz).utcoffset().total_seconds())  # type: ignore[union-attr]
        p = t - timedelta(seconds=1)
        prev = int(p.timestamp()) + int(p.astimezone(tz).utcoffset().total_seconds())  # type: ignore[union-attr]
        if wall % n == 0 or prev // n != wall // n:
            out.append(t)
        t += timedelta(minutes=1)
    return out


ZONES = [
    "UTC",
    "Europe/Paris",
    "Asia/Kolkata",
    "America/St_Johns",
    "Australia/Lord_Howe",
    "Asia/Kathmandu",
    "America/Santiago",
]
# Nights with clock changes (and an ordinary one) in 2026.
NIGHTS = [
    datetime(2026, 3, 28, 12, tzinfo=UTC),  # Paris spring forward (29 March)
    datetime(2026, 10, 24, 12, tzinfo=UTC),  # Paris fall back (25 October)
    datetime(2026, 4, 4, 6, tzinfo=UTC),  # Lord Howe fall back, Santiago
    datetime(2026, 10, 3, 6, tzinfo=UTC),  # Lord Howe spring forward
    datetime(2026, 3, 7, 18, tzinfo=UTC),  # St John's spring forward (8 March)
    datetime(2026, 10, 31, 18, tzinfo=UTC),  # St John's fall back (1 November)
    datetime(2026, 6, 15, 0, tzinfo=UTC),
]


@pytest.mark.parametrize("name", ZONES)
@pytest.mark.parametrize("interval", [Interval.M15, Interval.H1, Interval.D1])
def test_boundaries_match_the_definition(name: str, interval: Interval) -> None:
    tz = ZoneInfo(name)
    n = b.SECONDS[interval]
    for night in NIGHTS:
        lo, hi = night, night + timedelta(days=2)
        got = b.buckets(lo, hi, interval, tz)
        scanned = _scan(tz, n, lo - timedelta(days=2), hi + timedelta(days=2))
        inside = [s for s in scanned if lo <= s < hi]
        before = [s for s in scanned if s <= lo][-1]
        after = next(s for s in scanned if s >= hi)
        assert got.starts == ([before] if before < lo else []) + inside
        assert got.end == after


def test_paris_autumn_has_two_hours_at_two_and_a_25_hour_day() -> None:
    tz = ZoneInfo("Europe/Paris")
    day = datetime(2026, 10, 24, 22, tzinfo=UTC)  # local midnight of 25 October
    hours = b.buckets(day, day + timedelta(hours=25), Interval.H1, tz)
    assert len(hours.starts) == 25
    walls = [s.astimezone(tz).strftime("%H%z") for s in hours.starts[:4]]
    assert walls == ["00+0200", "01+0200", "02+0200", "02+0100"]
    days = b.buckets(day, day + timedelta(hours=1), Interval.D1, tz)
    assert days.starts == [day] and days.end - day == timedelta(hours=25)


def test_paris_spring_day_has_23_hours() -> None:
    tz = ZoneInfo("Europe/Paris")
    day = datetime(2026, 3, 28, 23, tzinfo=UTC)
    days = b.buckets(day, day + timedelta(hours=1), Interval.D1, tz)
    assert days.end - days.starts[0] == timedelta(hours=23)


def test_kolkata_hours_start_at_half_past_utc() -> None:
    tz = ZoneInfo("Asia/Kolkata")
    lo = datetime(2026, 1, 1, tzinfo=UTC)
    got = b.buckets(lo, lo + timedelta(hours=3), Interval.H1, tz)
    assert [s.minute for s in got.starts] == [30, 30, 30, 30]
    assert got.starts[0] == datetime(2025, 12, 31, 23, 30, tzinfo=UTC)
    assert not got.on_grid(b.HOUR) and got.on_grid(b.MINUTE)


def test_lord_howe_half_hour_dst_buckets() -> None:
    tz = ZoneInfo("Australia/Lord_Howe")
    # autumn 2026-04-05 02:00 +11 -> 01:30 +10:30 (15:00Z on the 4th): a 90-minute bucket
    lo = datetime(2026, 4, 4, 13, tzinfo=UTC)
    got = b.buckets(lo, lo + timedelta(hours=4), Interval.H1, tz)
    lengths = [
        (e - s) / timedelta(minutes=1)
        for s, e in zip(got.starts, [*got.starts[1:], got.end], strict=True)
    ]
    assert 90 in lengths and sum(lengths) == (got.end - got.starts[0]) / timedelta(minutes=1)
    # spring 2026-10-04 02:00 +10:30 -> 02:30 +11 (15:30Z on the 3rd): a 30-minute bucket
    lo = datetime(2026, 10, 3, 13, tzinfo=UTC)
    got = b.buckets(lo, lo + timedelta(hours=4), Interval.H1, tz)
    starts = [s.astimezone(tz).strftime("%H:%M%z") for s in got.starts]
    assert "02:30+1100" in starts


def test_one_minute_utc_week_is_dense_and_the_limit_holds() -> None:
    lo = datetime(2026, 1, 5, tzinfo=UTC)
    week = b.buckets(lo, lo + timedelta(days=7), Interval.M1, ZoneInfo("UTC"))
    assert len(week.starts) == b.MAX_BUCKETS and week.dense(b.MINUTE)
    with pytest.raises(b.QueryLimit) as info:
        b.buckets(lo, lo + timedelta(days=7, minutes=1), Interval.M1, ZoneInfo("UTC"))
    assert info.value.field == "interval"


def test_range_widens_to_whole_buckets_and_start_of() -> None:
    tz = ZoneInfo("UTC")
    lo = datetime(2026, 1, 5, 10, 7, 30, tzinfo=UTC)
    got = b.buckets(lo, lo + timedelta(minutes=20), Interval.M15, tz)
    assert got.starts == [datetime(2026, 1, 5, 10, m, tzinfo=UTC) for m in (0, 15)]
    assert got.end == datetime(2026, 1, 5, 10, 30, tzinfo=UTC)
    assert got.start_of(lo) == got.starts[0]


def test_limits() -> None:
    lo = datetime(2026, 1, 1, tzinfo=UTC)
    with pytest.raises(b.QueryLimit):
        b.buckets(lo, lo, Interval.H1, ZoneInfo("UTC"))
    far = datetime(9999, 12, 31, tzinfo=UTC)
    with pytest.raises(b.QueryLimit) as info:
        b.buckets(far - timedelta(days=1), far, Interval.H1, ZoneInfo("UTC"))
    assert info.value.field == "to"
    with pytest.raises(b.QueryLimit) as info:
        b.buckets(datetime(1, 1, 2, tzinfo=UTC), lo, Interval.H1, ZoneInfo("UTC"))
    assert info.value.field == "from"
    b.check_source_rows(1, timedelta(days=105), b.MINUTE)
    with pytest.raises(b.QueryLimit):
        b.check_source_rows(1, timedelta(days=106), b.MINUTE)
    with pytest.raises(b.QueryLimit):
        b.check_source_rows(300, timedelta(days=7), b.MINUTE)
    b.check_stats(1, lo, lo + timedelta(days=31))
    with pytest.raises(b.QueryLimit):
        b.check_stats(1, lo, lo + timedelta(days=32))
    with pytest.raises(b.QueryLimit):
        b.check_stats(100, lo, lo + timedelta(days=11))
    with pytest.raises(b.QueryLimit):
        b.check_raw_many(2, lo, None)
    with pytest.raises(b.QueryLimit):
        b.check_raw_many(8, lo, lo + timedelta(days=1))


@pytest.mark.parametrize(
    ("zone", "interval", "width"),
    [
        ("UTC", "1h", b.HOUR),
        ("Europe/Paris", "1d", b.HOUR),  # whole-hour offsets, DST included
        ("Europe/Paris", "15m", b.MINUTE),
        ("Asia/Kolkata", "1h", b.MINUTE),  # hours start at :30 UTC
        ("America/St_Johns", "1d", b.MINUTE),
        ("Australia/Lord_Howe", "1h", b.HOUR),  # +11 all week long
        ("UTC", "1m", b.MINUTE),
    ],
)
def test_the_rollup_that_serves_an_answer(zone: str, interval: Any, width: int) -> None:
    from outpost_contracts.readings import GetAggregates
    from outpost_readings.app.queries import plan_aggregates

    lo = datetime(2026, 10, 20, 7, 13, tzinfo=UTC)
    # Lord Howe's week across its change from +10:30 to +11: the minute rollup serves it
    across = GetAggregates(
        device_id=uuid4(),
        from_=datetime(2026, 10, 1, tzinfo=UTC),
        to=lo,
        interval="1h",
        timezone="Australia/Lord_Howe",
    )
    assert plan_aggregates(across)[1] == b.MINUTE
    q = GetAggregates(
        device_id=uuid4(), from_=lo, to=lo + timedelta(days=7), interval=interval, timezone=zone
    )
    grid, got = plan_aggregates(q)
    assert got == width
    assert grid.dense(width) == (b.SECONDS[b.Interval(interval)] == width)
