"""Maintenance windows: when a rollout may notify new devices (ADR 0094).

A window is ``{days, start, end, timezone}``: it opens at ``start`` local time on each of
``days`` and closes at ``end``; an ``end`` before ``start`` closes the next day (22:00-04:00
on FRI is Friday night into Saturday morning). Local time is the ``timezone``'s (an IANA name),
daylight saving included: the window follows the wall clock. A wall-clock time a DST change
skips (02:30 on a spring-forward night) is read with the offset before the change, as
``zoneinfo`` does (``fold=0``). Cron expressions are not supported (no cron library is a
dependency); the contract can take one by addition.

The domain does not read the time-zone database (that is I/O): the use case resolves the
name with ``zoneinfo.ZoneInfo`` and passes the ``tzinfo`` in; an unknown name is refused
there, with ``zone_error``.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta, tzinfo

from outpost_contracts.errors import ValidationFailed, validation_error
from outpost_contracts.firmware import MaintenanceWindow, Weekday

_WEEKDAYS = list(Weekday)  # MON is 0, as date.weekday() counts


def check(window: MaintenanceWindow) -> None:
    """The rules the contract's types do not say: some days, each once; start != end."""
    if not window.days:
        raise validation_error("maintenanceWindow.days", "must name at least one day")
    if len(set(window.days)) != len(window.days):
        raise validation_error("maintenanceWindow.days", "must not repeat a day")
    if window.start == window.end:
        raise validation_error("maintenanceWindow.end", "must differ from start")


def zone_error(name: str) -> ValidationFailed:
    return validation_error("maintenanceWindow.timezone", f"unknown time zone {name!r}")


def _clock(text: str) -> time:
    hours, minutes = text.split(":")
    return time(int(hours), int(minutes))


def _span(window: MaintenanceWindow, day: date, zone: tzinfo) -> tuple[datetime, datetime]:
    """The window opening on ``day``, as UTC instants (aware datetimes sharing one tzinfo
    compare by wall time, so everything is compared in UTC)."""
    start, end = _clock(window.start), _clock(window.end)
    opens = datetime.combine(day, start, tzinfo=zone)
    closes = datetime.combine(day + timedelta(days=1) if end <= start else day, end, tzinfo=zone)
    return opens.astimezone(UTC), closes.astimezone(UTC)


def _opening_days(window: MaintenanceWindow, first: date, n: int) -> list[date]:
    days = {_WEEKDAYS.index(d) for d in window.days}
    return [d for d in (first + timedelta(days=i) for i in range(n)) if d.weekday() in days]


def is_open(window: MaintenanceWindow | None, now: datetime, zone: tzinfo) -> bool:
    """Whether ``now`` is inside the window (no window: always)."""
    if window is None:
        return True
    today = now.astimezone(zone).date()
    instant = now.astimezone(UTC)
    for day in _opening_days(window, today - timedelta(days=1), 2):
        opens, closes = _span(window, day, zone)
        if opens <= instant < closes:
            return True
    return False


def next_opening(window: MaintenanceWindow | None, now: datetime, zone: tzinfo) -> datetime:
    """``now`` if the window is open, else the instant (UTC) it next opens: when the
    scheduler should look at the rollout again."""
    if window is None or is_open(window, now, zone):
        return now
    today = now.astimezone(zone).date()
    instant = now.astimezone(UTC)
    for day in _opening_days(window, today, 9):
        opens, _ = _span(window, day, zone)
        if opens > instant:
            return opens
    raise AssertionError("a window with a day opens within a week")  # pragma: no cover
