"""Rate limits as pure data: the three categories, fixed one-minute windows, the decision
for a counted request and the headers that report it (docs/api.md "Rate limits").

The count itself comes from the shared store, which hands out counts atomically, one or a
lease of several at a time (``lease_size``); nothing here reads a clock or does I/O:
callers pass ``now`` as UTC epoch seconds.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass
from uuid import UUID

WINDOW_SECONDS = 60


class Category(enum.StrEnum):
    SINGLE = "single"  # GET of one object
    LIST = "list"  # paginated GET
    WRITE = "write"  # POST, PUT, PATCH, DELETE


@dataclass(frozen=True, slots=True)
class Limits:
    """Requests per minute for each category."""

    single: int = 500
    list: int = 50
    write: int = 50

    def for_category(self, category: Category) -> int:
        return int(getattr(self, category.value))

    def with_overrides(self, overrides: Mapping[Category, int]) -> Limits:
        values = {c.value: overrides.get(c, self.for_category(c)) for c in Category}
        return Limits(**values)


@dataclass(frozen=True, slots=True)
class Window:
    start: int  # UTC epoch seconds, inclusive
    end: int  # UTC epoch seconds, exclusive: X-RateLimit-Reset


def window_at(now: float, seconds: int = WINDOW_SECONDS) -> Window:
    """The fixed window containing ``now`` (epoch seconds)."""
    start = int(now // seconds) * seconds
    return Window(start=start, end=start + seconds)


@dataclass(frozen=True, slots=True)
class Decision:
    category: str  # a ``Category``, or a public route's counter (decision 75)
    limit: int
    count: int  # this request's position in the window (1 = the first)
    window: Window
    now: float
    # Why a refusal is a refusal, when it is not "over the per-minute limit" (a backoff).
    reason: str | None = None

    @property
    def admitted(self) -> bool:
        return self.count <= self.limit

    @property
    def remaining(self) -> int:
        return max(0, self.limit - self.count)

    @property
    def retry_after(self) -> int:
        """Whole seconds until the window resets (at least 1)."""
        return max(1, math.ceil(self.window.end - self.now))

    def message(self) -> str:
        if self.reason is not None:
            return f"{self.reason}; retry after {self.retry_after} s"
        return (
            f"rate limit '{self.category}' of {self.limit} requests per minute exceeded; "
            f"retry after {self.retry_after} s"
        )

    def headers(self) -> list[tuple[str, str]]:
        out = [
            ("X-RateLimit-Limit", str(self.limit)),
            ("X-RateLimit-Remaining", str(self.remaining)),
            ("X-RateLimit-Reset", str(self.window.end)),
        ]
        if not self.admitted:
            out.append(("Retry-After", str(self.retry_after)))
        return out


def decide(category: str, limit: int, count: int, now: float) -> Decision:
    return Decision(category=category, limit=limit, count=count, window=window_at(now), now=now)


MAX_LEASE = 64
# A lease is at most this fraction of the limit (1/50 = 2%): counts a replica leased and no
# longer needs are lost for the window, so with R replicas a credential can be refused at
# most R * limit / 50 requests early (6% with three) — and never admitted past the limit.
LEASE_FRACTION = 50


@dataclass(slots=True)
class Lease:
    """Counts ``first..last`` of one window, taken from the shared counter in one atomic
    increment by this replica, which hands them out itself, in order. Every count is handed
    out once across all replicas, so no more than ``limit`` requests are admitted whatever
    the number of replicas; counts a replica leased and never used are lost for the window
    (never admitted twice)."""

    window_start: int
    next: int
    last: int

    def take(self) -> int | None:
        if self.next > self.last:
            return None
        n = self.next
        self.next += 1
        return n

    def exhausted(self, limit: int) -> bool:
        """The shared count passed the limit: every later request of the window is refused
        without asking the store (a flood of refused requests costs nothing)."""
        return self.last >= limit and self.next > self.last


def lease_size(
    limit: int, seen: int, previous: int, *, busy: bool, replicas: int, cap: int = MAX_LEASE
) -> int:
    """How many counts to take in the next increment. One while the credential is quiet
    (every request is counted in the store: exact across replicas); doubling while it is
    busy (the last lease ran out quickly); never more than a ``2 * replicas`` share of what is
    left under the limit, so leases shrink back to one near the limit and replicas strand
    almost nothing; never more than ``limit / LEASE_FRACTION``; ``seen`` is the last count
    this replica saw for the window."""
    if not busy or cap <= 1:
        return 1
    headroom = limit - seen
    most = min(cap, limit // LEASE_FRACTION, headroom // (2 * max(1, replicas)))
    return max(1, min(previous * 2, most))


def local_share(limit: int, replicas: int) -> int:
    """What one replica may admit on its own when the shared store is unavailable."""
    return max(1, limit // max(1, replicas))


class LocalWindows:
    """Per-process fixed-window counters: the fallback when the shared store is unavailable.
    Not shared between replicas, hence ``local_share``. Old windows are dropped as new ones
    start, so memory holds at most the credentials active in the last two windows."""

    def __init__(self) -> None:
        self._counts: dict[tuple[UUID, str, int], int] = {}
        self._current = -1

    def hit(self, credential: UUID, category: str, window: Window) -> int:
        if window.start != self._current:
            self._counts = {k: v for k, v in self._counts.items() if k[2] >= self._current}
            self._current = window.start
        key = (credential, category, window.start)
        n = self._counts.get(key, 0) + 1
        self._counts[key] = n
        return n
