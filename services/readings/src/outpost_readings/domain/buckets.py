"""Time buckets of aggregated readings in any IANA time zone, and the limits of a query:
pure arithmetic on instants (decision 60).

A bucket of interval N (1m, 5m, 15m, 1h, 1d) holds the instants whose local wall time
falls in one wall-clock slot of length N counted from local midnight. A bucket *starts* at
an instant whose wall time is exactly on a slot boundary, or at the instant the wall time
jumps into a new slot (a clock change skipping the slot's start). So buckets partition the
timeline and are named by the instant they start at:

- Europe/Paris, autumn: 02:00 CEST and 02:00 CET are two 1h buckets, an hour each; the
  day is a 25-hour 1d bucket. Spring: 01:00Z starts the 03:00 CEST bucket; the day has
  23 hours.
- Asia/Kolkata (+05:30): hours start at :30 UTC.
- Australia/Lord_Howe (half-hour DST): the 01:00 bucket of the autumn night lasts 90
  minutes (01:00-02:00 +11, then 01:30-02:00 +10:30); in spring the 02:00 bucket starts
  at 02:30 +11 and lasts 30 minutes.

Instants are whole seconds here (zone transitions are); readings between two boundaries
belong to the earlier one. The zone is passed in (a ``tzinfo``; the app loads it from the
zone database).
"""

from __future__ import annotations

import bisect
import enum
import functools
from datetime import UTC, datetime, timedelta, tzinfo

from outpost_contracts import readings as api


class Interval(enum.StrEnum):
    M1 = "1m"
    M5 = "5m"
    M15 = "15m"
    H1 = "1h"
    D1 = "1d"


SECONDS = {
    Interval.M1: 60,
    Interval.M5: 300,
    Interval.M15: 900,
    Interval.H1: 3600,
    Interval.D1: 86400,
}

# The rollup tables and the width of their rows, in seconds.
MINUTE, HOUR = 60, 3600

MAX_BUCKETS = api.MAX_BUCKETS
MAX_MINUTE_SOURCE = timedelta(days=api.MAX_MINUTE_SOURCE_DAYS)
MAX_SOURCE_ROWS = api.MAX_SOURCE_ROWS
MAX_STATS_RANGE = timedelta(days=api.MAX_STATS_DAYS)
MAX_STATS_DEVICE_DAYS = api.MAX_STATS_DEVICE_DAYS
MAX_RAW_DEVICE_DAYS = api.MAX_RAW_DEVICE_DAYS
MAX_DEVICES = api.MAX_QUERY_DEVICES


# Aggregates are computed for instants in this span (the zone database's, with margin).
EARLIEST = datetime(1971, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)


class QueryLimit(Exception):
    """A query beyond a limit: ``field`` names the parameter to change."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def _offset(tz: tzinfo, t: int) -> int:
    off = datetime.fromtimestamp(t, tz).utcoffset()
    assert off is not None
    return int(off.total_seconds())


_STEP = 6 * 3600  # no zone changes its offset twice within six hours


def _segments(tz: tzinfo, lo: int, hi: int) -> list[tuple[int, int]]:
    """``[(start, offset)]`` covering ``[lo, hi)``: the first starts at ``lo``, every other
    at an instant where the offset changes."""
    out = [(lo, _offset(tz, lo))]
    p = lo
    while p < hi:
        q = min(p + _STEP, hi)
        if _offset(tz, q) != out[-1][1]:
            a, b = p, q  # offset(a) is the segment's, offset(b) differs: bisect to 1 s
            while b - a > 1:
                mid = (a + b) // 2
                if _offset(tz, mid) == out[-1][1]:
                    a = mid
                else:
                    b = mid
            if b < hi:
                out.append((b, _offset(tz, b)))
            p = b
        else:
            p = q
    return out


def _boundaries(tz: tzinfo, n: int, lo: int, hi: int) -> list[int]:
    """Every bucket start in ``[lo, hi)`` (epoch seconds), in order."""
    segs = _segments(tz, lo, hi)
    out: list[int] = []
    for i, (a, off) in enumerate(segs):
        b = segs[i + 1][0] if i + 1 < len(segs) else hi
        if i > 0:
            prev = segs[i - 1][1]
            # the wall clock jumped into another slot without passing its start
            if (a - 1 + prev) // n != (a + off) // n and (a + off) % n != 0:
                out.append(a)
        w = -(-(a + off) // n) * n  # first aligned wall time at or after a
        out.extend(range(w - off, b, n))
    return out


class Buckets:
    """The buckets covering a query's ``[from, to)``, widened to whole buckets: their starts
    (UTC, ascending) and ``end``, where the last one ends. Held as epoch seconds; the
    instants are made only when asked for (a dense answer needs the first and the end)."""

    def __init__(self, seconds: list[int], end: int) -> None:
        self._seconds = seconds
        self._end = end

    def __len__(self) -> int:
        return len(self._seconds)

    @property
    def first(self) -> datetime:
        return _utc(self._seconds[0])

    @property
    def end(self) -> datetime:
        return _utc(self._end)

    @functools.cached_property
    def starts(self) -> list[datetime]:
        return [_EPOCH + timedelta(seconds=t) for t in self._seconds]

    def on_grid(self, seconds: int) -> bool:
        """Whether every boundary is a whole multiple of ``seconds`` in UTC (a rollup of
        that width can serve the query)."""
        return self._end % seconds == 0 and all(t % seconds == 0 for t in self._seconds)

    def dense(self, seconds: int) -> bool:
        """Whether the buckets are exactly the rollup's rows of width ``seconds``."""
        span = self._end - self._seconds[0]
        return self.on_grid(seconds) and span == len(self._seconds) * seconds

    def start_of(self, t: datetime) -> datetime:
        """The start of the bucket holding ``t`` (which must lie in the range)."""
        return _utc(self._seconds[bisect.bisect_right(self._seconds, t.timestamp()) - 1])


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _utc(t: int) -> datetime:
    return _EPOCH + timedelta(seconds=t)


def buckets(
    start: datetime, end: datetime, interval: Interval, tz: tzinfo, *, limit: int = MAX_BUCKETS
) -> Buckets:
    """The buckets of ``interval`` in ``tz`` that overlap ``[start, end)``.
    QueryLimit when ``start`` is not before ``end`` or more than ``limit`` buckets."""
    if start >= end:
        raise QueryLimit("from", "must be before 'to'")
    if start < EARLIEST:
        raise QueryLimit("from", f"must not be before {EARLIEST:%Y-%m-%d}")
    if end > LATEST:
        raise QueryLimit("to", f"must not be after {LATEST:%Y-%m-%d}")
    n = SECONDS[interval]
    span = (end - start).total_seconds()
    if span / n > limit + 2:  # cheap refusal before any arithmetic
        raise QueryLimit("interval", _too_many(interval, limit))
    lo = int(start.timestamp() // 1)
    hi = -int(-end.timestamp() // 1)
    back = n + 2 * 86400 if interval is Interval.D1 else n + 4 * 3600
    found = _boundaries(tz, n, lo - back, hi + back)
    first = bisect.bisect_right(found, lo) - 1
    last = bisect.bisect_left(found, hi)  # the first boundary at or after ``end``
    if first < 0 or last >= len(found):  # cannot happen with the margins above
        raise AssertionError("bucket margins too small")
    if last - first > limit:
        raise QueryLimit("interval", _too_many(interval, limit))
    return Buckets(found[first:last], found[last])


def _too_many(interval: Interval, limit: int) -> str:
    return (
        f"more than {limit:,} buckets of {interval.value} between 'from' and 'to';"
        " narrow the range or choose a longer interval"
    )


def check_source_rows(devices: int, span: timedelta, width: int) -> None:
    """Devices x rollup rows of ``width`` seconds over ``span``: at most MAX_SOURCE_ROWS;
    a per-minute source covers at most MAX_MINUTE_SOURCE."""
    if width == MINUTE and span > MAX_MINUTE_SOURCE:
        raise QueryLimit(
            "from",
            f"this interval and time zone are served from per-minute rollups: at most"
            f" {MAX_MINUTE_SOURCE.days} days between 'from' and 'to'",
        )
    if devices * span.total_seconds() / width > MAX_SOURCE_ROWS:
        raise QueryLimit(
            "from",
            f"{devices} devices over this range read more than {MAX_SOURCE_ROWS:,} rollup"
            " rows; narrow the range, choose a longer interval or fewer devices",
        )


def check_stats(devices: int, start: datetime, end: datetime) -> None:
    if start >= end:
        raise QueryLimit("from", "must be before 'to'")
    if end - start > MAX_STATS_RANGE:
        raise QueryLimit(
            "from", f"statistics cover at most {MAX_STATS_RANGE.days} days between 'from' and 'to'"
        )
    if devices * (end - start) / timedelta(days=1) > MAX_STATS_DEVICE_DAYS:
        raise QueryLimit(
            "from",
            f"statistics of {devices} devices over this range exceed {MAX_STATS_DEVICE_DAYS}"
            " device-days; narrow the range or choose fewer devices",
        )


def check_raw_many(devices: int, start: datetime | None, end: datetime | None) -> None:
    """Raw readings of a group or site: ``from`` and ``to`` required, device-days bounded."""
    if start is None or end is None:
        raise QueryLimit("from" if start is None else "to", "required with groupId or siteId")
    if start >= end:
        raise QueryLimit("from", "must be before 'to'")
    if devices * (end - start) / timedelta(days=1) > MAX_RAW_DEVICE_DAYS:
        raise QueryLimit(
            "from",
            f"raw readings of {devices} devices over this range exceed {MAX_RAW_DEVICE_DAYS}"
            " device-days; narrow the range, or ask for aggregates",
        )
