"""Limits on the public routes (decision 75): per client address and per account, counted
in the shared rate-limit store through the same ``RateLimiter`` as credentials' limits
(so they hold across replicas and fall back to the process the same way), and a backoff
that slows an account down after repeated failures.

Every count is keyed by what the request names, never by what identity knows: an unknown
email is counted, slowed down and refused exactly like a known one.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from uuid import UUID

from outpost_contracts.envelope import PLATFORM_ORG_ID
from outpost_gateway.app.ports import RateLimitStore
from outpost_gateway.app.rate_limiter import MemoryStore, RateLimiter
from outpost_gateway.domain.public_throttle import (
    Backoff,
    PublicLimits,
    PublicRoute,
    key_id,
    period_window,
    store_key,
)
from outpost_gateway.domain.ratelimit import Decision

_log = logging.getLogger(__name__)
WARN_EVERY_SECONDS = 10.0


class PublicThrottle:
    """``by_address`` in the security check (before the body is read), ``by_account``
    before the service is called, ``failed`` when the service refused the credential."""

    def __init__(
        self,
        limiter: RateLimiter,
        store: RateLimitStore | None,
        limits: PublicLimits,
        backoff: Backoff,
        *,
        store_timeout: float = 2.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.limiter = limiter
        # Failure counts and backoff periods: the shared store, or this process's memory
        # when there is none (one process, tests).
        self.counts: RateLimitStore = store if store is not None else MemoryStore()
        self.limits = limits
        self.backoff = backoff
        self.store_timeout = store_timeout
        self.clock = clock
        self._last_warning = -WARN_EVERY_SECONDS

    async def by_address(self, route: PublicRoute, address: str) -> Decision:
        key = key_id(route, "address", address)
        return await self.limiter.check_key(
            PLATFORM_ORG_ID, key, f"{route}:address", self.limits.per_address
        )

    async def by_account(self, route: PublicRoute, account: str) -> Decision:
        """The account's per-minute limit, then its backoff: once it has failed too often,
        one attempt per fixed window of the backoff period, the window its last failure
        fell in already used (``failed``)."""
        key = key_id(route, "account", account)
        decision = await self.limiter.check_key(
            PLATFORM_ORG_ID, key, f"{route}:account", self.limits.per_account
        )
        if not decision.admitted:
            return decision
        now = self.clock()
        failures = await self._count(key, f"{route}:failures", self._failure_key(now), 0)
        period = self.backoff.period(failures or 0)
        if not period:
            return decision
        window = period_window(now, period)
        n = await self._count(key, f"{route}:backoff:{period}", store_key(window), 1)
        if n is None or n <= 1:  # the period's one attempt (or the store is away: fail open)
            return decision
        self.limiter.metrics.refused.labels(f"{route}:backoff").inc()
        return Decision(
            category=f"{route}:backoff",
            limit=1,
            count=n,
            window=window,
            now=now,
            reason="too many failed attempts for this account",
        )

    async def failed(self, route: PublicRoute, account: str) -> None:
        """The service refused the credential the request named: one more failure, and
        once they pass the free ones, the failed attempt used the current backoff period's
        one attempt (the next is admitted in the next period, whose length has doubled)."""
        key = key_id(route, "account", account)
        now = self.clock()
        failures = await self._count(key, f"{route}:failures", self._failure_key(now), 1)
        period = self.backoff.period(failures or 0)
        if period:
            window = period_window(now, period)
            await self._count(key, f"{route}:backoff:{period}", store_key(window), 1)

    def _failure_key(self, now: float) -> int:
        return store_key(period_window(now, self.backoff.window_seconds))

    async def _count(self, key: UUID, category: str, window_key: int, n: int) -> int | None:
        """Add ``n`` (0: read) to a count; None when the store does not answer."""
        try:
            async with asyncio.timeout(self.store_timeout):
                return await self.counts.hit(PLATFORM_ORG_ID, key, category, window_key, n)
        except Exception as exc:  # fail open, as the per-minute limits do (decision 21)
            at = time.monotonic()
            if at - self._last_warning >= WARN_EVERY_SECONDS:
                self._last_warning = at
                _log.warning("public-route backoff skipped: store unavailable (%s)", exc)
            return None
