"""When to try a request again: 429 after ``Retry-After``, 503 after an exponential backoff
(docs/api.md, "Rate limits" and "Errors"). Pure: the caller sleeps, so a test can count the
delays with a fake clock."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

RETRIED = frozenset({429, 503})


@dataclass(frozen=True)
class RetryPolicy:
    """``attempts`` in all (the first included); 503 waits ``base * 2**(n-1)`` seconds
    (capped at ``cap``) before the n-th retry; 429 waits what ``Retry-After`` says (at most
    ``max_retry_after``; the backoff when it is absent or garbled)."""

    attempts: int = 5
    base: float = 0.5
    cap: float = 8.0
    max_retry_after: float = 60.0

    def delay(
        self, attempt: int, status: int, retry_after: str | None, now: datetime | None = None
    ) -> float | None:
        """Seconds to wait before trying again after ``attempt`` (1-based) got ``status``;
        None: do not retry."""
        if status not in RETRIED or attempt >= self.attempts:
            return None
        backoff = min(self.cap, self.base * 2 ** (attempt - 1))
        if status == 429:
            wait = parse_retry_after(retry_after, now)
            if wait is None:
                return backoff
            return min(max(wait, 0.0), self.max_retry_after)
        return backoff


NO_RETRY = RetryPolicy(attempts=1)


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """``Retry-After`` as seconds: delta-seconds or an HTTP date (RFC 9110 §10.2.3)."""
    if value is None:
        return None
    value = value.strip()
    try:
        return float(value)
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return (when - (now or datetime.now(UTC))).total_seconds()
