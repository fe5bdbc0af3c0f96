"""A credential's rate limits: count a request in the shared store (falling back to this
process's memory when the store does not answer, leasing counts for a busy credential) and
read organization overrides through a short cache. ``MemoryStore`` is the shared store
(rate-limit counts and Idempotency-Key records) in this process's memory."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from uuid import UUID

from prometheus_client import CollectorRegistry, Counter

from outpost_contracts.envelope import Principal
from outpost_gateway.app.ports import IdempotencyStore, RateLimitStore
from outpost_gateway.domain.idempotency import Record, StoredResponse
from outpost_gateway.domain.ratelimit import (
    MAX_LEASE,
    Category,
    Decision,
    Lease,
    Limits,
    LocalWindows,
    Window,
    decide,
    lease_size,
    local_share,
    window_at,
)

_log = logging.getLogger(__name__)

WARN_EVERY_SECONDS = 10.0
# A lease used up within this long of being taken means the credential is busy: lease more.
BUSY_SECONDS = 1.0
# After a failed store call, a credential's requests use the in-process fallback for this
# long without trying the store again (they would otherwise wait behind the lease lock,
# one time-out each).
FAIL_FAST_SECONDS = 1.0
_CATEGORY_NAMES = frozenset(c.value for c in Category)


class RateLimitMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.refused = Counter(
            "outpost_ratelimit_refused",
            "Requests refused with 429, by rate-limit category",
            ["category"],
            registry=registry,
        )
        self.store_errors = Counter(
            "outpost_ratelimit_store_errors",
            "Rate-limit checks that fell back to the in-process limiter (store unavailable)",
            registry=registry,
        )


class _Leasing:
    """One credential and category's lease in this process, and what sizes the next one."""

    __slots__ = ("failed_at", "lease", "lock", "size", "taken_at")

    def __init__(self) -> None:
        self.lease: Lease | None = None
        self.size = 1
        self.taken_at = float("-inf")
        self.failed_at = float("-inf")
        self.lock = asyncio.Lock()


class StoreRecentlyFailed(Exception):
    """The store failed this credential's last lease a moment ago: fall back at once rather
    than queue behind the lock for another time-out each."""


class RateLimiter:
    """One ``check`` per limited request. ``store`` None means a single process with no
    shared store (tests, a one-replica development run): counts are kept in memory at the
    full limit.

    With a store, counts are leased (``domain.ratelimit.Lease``): a quiet credential costs
    one atomic increment per request, a busy one an increment per lease of up to
    ``max_lease`` requests, and once the window's limit is passed this process refuses the
    credential's requests without asking the store until the window ends."""

    def __init__(
        self,
        store: RateLimitStore | None,
        defaults: Limits,
        metrics: RateLimitMetrics,
        *,
        assumed_replicas: int = 3,
        store_timeout: float = 2.0,
        override_ttl: float = 30.0,
        max_lease: int = MAX_LEASE,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.defaults = defaults
        self.metrics = metrics
        self.replicas = 1 if store is None else assumed_replicas
        self.store_timeout = store_timeout
        self.override_ttl = override_ttl
        self.clock = clock
        self.monotonic = monotonic
        self.max_lease = max_lease
        self.local = LocalWindows()
        self._leases: dict[tuple[UUID, str], _Leasing] = {}
        self._leases_window = -1
        self._overrides: dict[UUID, tuple[float, Limits]] = {}
        self._last_warning = -WARN_EVERY_SECONDS

    async def check(self, principal: Principal, category: Category) -> Decision:
        limits = await self.limits_for(principal.org_id)
        return await self.check_key(
            principal.org_id, principal.id, category, limits.for_category(category)
        )

    async def check_key(self, org_id: UUID, key: UUID, category: str, limit: int) -> Decision:
        """Count one request of ``key`` (a credential, or a public route's address or
        account key, decision 75) in ``category`` against ``limit`` per minute."""
        now = self.clock()
        window = window_at(now)
        if self.store is not None:
            try:
                count = await self._leased_count(org_id, key, category, window, limit)
                return self._counted(decide(category, limit, count, now))
            except Exception as exc:  # any store failure: fail open, never 500
                self._store_failed(exc)
        share = local_share(limit, self.replicas)
        count = self.local.hit(key, category, window)
        # Reported against the share this process enforces while the store is away.
        return self._counted(decide(category, share, count, now))

    async def _leased_count(
        self, org_id: UUID, key: UUID, category: str, window: Window, limit: int
    ) -> int:
        if window.start != self._leases_window:  # a new window: forget the old leases
            self._leases = {k: v for k, v in self._leases.items() if v.lock.locked()}
            self._leases_window = window.start
        leasing = self._leases.get((key, category))
        if leasing is None:
            leasing = self._leases[(key, category)] = _Leasing()
        while True:
            lease = leasing.lease
            if lease is not None and lease.window_start == window.start:
                count = lease.take()
                if count is not None:
                    return count
                if lease.exhausted(limit):
                    return lease.last + 1
            self._fail_fast(leasing)
            async with leasing.lock:
                if leasing.lease is not lease:  # another request leased meanwhile
                    continue
                self._fail_fast(leasing)  # the request that held the lock just failed
                await self._lease(leasing, org_id, key, category, window, limit)

    def _fail_fast(self, leasing: _Leasing) -> None:
        if self.monotonic() - leasing.failed_at < FAIL_FAST_SECONDS:
            raise StoreRecentlyFailed("the rate-limit store failed a moment ago")

    async def _lease(
        self,
        leasing: _Leasing,
        org_id: UUID,
        key: UUID,
        category: str,
        window: Window,
        limit: int,
    ) -> None:
        assert self.store is not None
        at = self.monotonic()
        lease = leasing.lease
        same_window = lease is not None and lease.window_start == window.start
        size = lease_size(
            limit,
            lease.last if lease is not None and same_window else 0,
            leasing.size,
            busy=at - leasing.taken_at < BUSY_SECONDS,
            replicas=self.replicas,
            cap=self.max_lease,
        )
        try:
            async with asyncio.timeout(self.store_timeout):
                last = await self.store.hit(org_id, key, str(category), window.start, size)
        except Exception:
            leasing.failed_at = self.monotonic()
            raise
        leasing.lease = Lease(window_start=window.start, next=last - size + 1, last=last)
        leasing.size, leasing.taken_at = size, at

    def _counted(self, decision: Decision) -> Decision:
        if not decision.admitted:
            self.metrics.refused.labels(str(decision.category)).inc()
        return decision

    def _store_failed(self, exc: BaseException) -> None:
        self.metrics.store_errors.inc()
        at = self.monotonic()
        if at - self._last_warning >= WARN_EVERY_SECONDS:
            self._last_warning = at
            _log.warning(
                "rate-limit store unavailable (%s: %s); limiting in this process at "
                "limit/%d until it answers",
                type(exc).__name__,
                exc,
                self.replicas,
            )

    async def set_overrides(self, org_id: UUID, overrides: Mapping[Category, int | None]) -> Limits:
        """Change an organization's limits in the shared store (every replica reads them
        within its override cache's lifetime; this one at once) and return the new ones."""
        if self.store is None:
            raise RuntimeError("no shared store: limits are the settings' defaults")
        await self.store.set_overrides(org_id, {c.value: n for c, n in overrides.items()})
        self._overrides.pop(org_id, None)
        return await self.limits_for(org_id)

    async def overridden(self, org_id: UUID) -> list[Category]:
        """The categories the organization has its own limit for."""
        if self.store is None:
            return []
        raw = await self.store.overrides(org_id)
        return [c for c in Category if c.value in raw]

    async def limits_for(self, org_id: UUID) -> Limits:
        if self.store is None:
            return self.defaults
        at = self.monotonic()
        cached = self._overrides.get(org_id)
        if cached is not None and cached[0] > at:
            return cached[1]
        limits = self.defaults
        try:
            async with asyncio.timeout(self.store_timeout):
                raw = await self.store.overrides(org_id)
            limits = self.defaults.with_overrides(
                {Category(k): v for k, v in raw.items() if k in _CATEGORY_NAMES}
            )
        except Exception as exc:
            self._store_failed(exc)
        if len(self._overrides) > 100_000:
            self._overrides.clear()
        self._overrides[org_id] = (at + self.override_ttl, limits)
        return limits


class MemoryStore:
    """``RateLimitStore`` and ``IdempotencyStore`` in this process's memory: for tests and a
    single-process run without Postgres. Not shared between replicas."""

    def __init__(self) -> None:
        self.counts: dict[tuple[UUID, str, int], int] = {}
        self.limit_overrides: dict[UUID, dict[str, int]] = {}
        self.keys: dict[tuple[UUID, UUID, str], Record] = {}

    async def hit(
        self, org_id: UUID, credential_id: UUID, category: str, window_start: int, n: int = 1
    ) -> int:
        key = (credential_id, category, window_start)
        self.counts[key] = self.counts.get(key, 0) + n
        return self.counts[key]

    async def overrides(self, org_id: UUID) -> dict[str, int]:
        return dict(self.limit_overrides.get(org_id, {}))

    async def set_overrides(self, org_id: UUID, overrides: dict[str, int | None]) -> None:
        current = self.limit_overrides.setdefault(org_id, {})
        for category, per_minute in overrides.items():
            if per_minute is None:
                current.pop(category, None)
            else:
                current[category] = per_minute

    async def claim(
        self, credential_id: UUID, key: str, org_id: UUID, request_hash: bytes
    ) -> Record | None:
        existing = self.keys.get((credential_id, org_id, key))
        if existing is not None:
            return existing
        self.keys[(credential_id, org_id, key)] = Record(request_hash=request_hash, response=None)
        return None

    async def complete(
        self, credential_id: UUID, key: str, org_id: UUID, response: StoredResponse
    ) -> None:
        record = self.keys[(credential_id, org_id, key)]
        self.keys[(credential_id, org_id, key)] = Record(
            request_hash=record.request_hash, response=response
        )

    async def release(self, credential_id: UUID, key: str, org_id: UUID) -> None:
        record = self.keys.get((credential_id, org_id, key))
        if record is not None and record.response is None:
            del self.keys[(credential_id, org_id, key)]


__all__ = ["IdempotencyStore", "MemoryStore", "RateLimitMetrics", "RateLimiter"]
