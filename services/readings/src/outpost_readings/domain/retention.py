"""Retention as a plan: which day partitions of ``readings`` to drop and which
organizations' rows to delete, and before when. Pure: today, the partitions there are and
the settings in force are passed in.

Retention works in whole UTC days, like the partitions: an organization keeping ``N`` days
keeps today and the ``N`` days before it, so a reading expires when its UTC day is before
``today - N``. A partition is dropped when its day is before ``today - longest``, the
longest retention in force (the deployment's default or any organization's own); an
organization keeping fewer days than the longest has its expired rows in the partitions
that stay (the edges) deleted, row by row, under its own tenant.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from uuid import UUID


def day_start(day: date) -> datetime:
    """Midnight UTC at the start of ``day``."""
    return datetime.combine(day, time(), tzinfo=UTC)


@dataclass(frozen=True)
class Expiry:
    """An organization's rows older than ``cutoff`` expire. ``edges``: some of them may sit
    in partitions that are kept (its retention is shorter than the longest), so tables
    emptied by dropping partitions need deleting from too; otherwise only the tables that
    are not partitioned by day do."""

    org_id: UUID
    days: int
    cutoff: datetime
    edges: bool


@dataclass(frozen=True)
class RetentionPlan:
    longest_days: int
    # Partitions of days before this go whole.
    drop_before: date
    drop_days: list[date] = field(default_factory=list)
    expiries: list[Expiry] = field(default_factory=list)


def plan(
    today: date,
    partition_days: Iterable[date],
    default_days: int,
    settings: Mapping[UUID, int | None],
    tenants: Iterable[UUID],
) -> RetentionPlan:
    """What to drop and what to delete today.

    ``settings``: each organization's own retention (None or absent: the default);
    ``tenants``: every organization with data here, with a setting or not."""
    if default_days < 1:
        raise ValueError("the default retention must be at least one day")
    own = {org: days for org, days in settings.items() if days is not None}
    longest = max([default_days, *own.values()])
    drop_before = today - timedelta(days=longest)
    drops = sorted(day for day in set(partition_days) if day < drop_before)
    expiries = []
    for org in sorted(set(tenants) | set(settings)):
        days = own.get(org, default_days)
        cutoff_day = today - timedelta(days=days)
        expiries.append(
            Expiry(org_id=org, days=days, cutoff=day_start(cutoff_day), edges=days < longest)
        )
    return RetentionPlan(
        longest_days=longest, drop_before=drop_before, drop_days=drops, expiries=expiries
    )


def partition_day(name: str) -> date | None:
    """The UTC day of a partition named ``readings_pYYYYMMDD``; None for any other name."""
    prefix = "readings_p"
    digits = name.removeprefix(prefix)
    if not name.startswith(prefix) or len(digits) != 8 or not digits.isdigit():
        return None
    try:
        return date(int(digits[:4]), int(digits[4:6]), int(digits[6:]))
    except ValueError:
        return None
