"""Leased counts: a quiet credential is counted request by request in the shared store, a
busy one in leases, and however the requests spread over replicas no more than the limit
is admitted and no admitted count is handed out twice."""

from __future__ import annotations

import asyncio
from uuid import UUID, uuid4

import pytest
from prometheus_client import CollectorRegistry

from outpost_contracts.envelope import Principal, PrincipalKind
from outpost_gateway.app.rate_limiter import MemoryStore, RateLimiter, RateLimitMetrics
from outpost_gateway.domain.ratelimit import Category, Lease, Limits, lease_size

pytestmark = pytest.mark.unit

T = 1_800_000_010.0  # 50 s before its window ends


class CountingStore(MemoryStore):
    """The in-memory store, counting round trips and yielding like a network call would."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    async def hit(
        self, org_id: UUID, credential_id: UUID, category: str, window_start: int, n: int = 1
    ) -> int:
        self.calls += 1
        await asyncio.sleep(0)
        return await super().hit(org_id, credential_id, category, window_start, n)


def limiter(store: MemoryStore, clock: list[float], mono: list[float]) -> RateLimiter:
    return RateLimiter(
        store,
        Limits(),
        RateLimitMetrics(CollectorRegistry()),
        clock=lambda: clock[0],
        monotonic=lambda: mono[0],
    )


def principal() -> Principal:
    return Principal(kind=PrincipalKind.API_KEY, id=uuid4(), org_id=uuid4())


def test_lease_sizes_start_at_one_double_when_busy_and_shrink_near_the_limit() -> None:
    assert lease_size(5000, 0, 1, busy=False, replicas=3) == 1
    assert lease_size(5000, 10, 1, busy=True, replicas=3) == 2
    assert lease_size(5000, 10, 32, busy=True, replicas=3) == 64
    assert lease_size(5000, 10, 64, busy=True, replicas=3) == 64  # the cap
    assert lease_size(500, 10, 64, busy=True, replicas=3) == 10  # 2% of the limit
    assert lease_size(5000, 4900, 64, busy=True, replicas=3) == 16  # 100 left / (2 * 3)
    assert lease_size(5000, 4997, 64, busy=True, replicas=3) == 1
    assert lease_size(5000, 6000, 64, busy=True, replicas=3) == 1
    assert lease_size(50, 10, 64, busy=True, replicas=3) == 1  # small limits: exact
    assert lease_size(5000, 10, 64, busy=True, replicas=3, cap=1) == 1


def test_a_lease_hands_out_its_counts_once_and_knows_when_the_limit_is_passed() -> None:
    lease = Lease(window_start=0, next=49, last=51)
    assert [lease.take(), lease.take(), lease.take(), lease.take()] == [49, 50, 51, None]
    assert lease.exhausted(50) and not lease.exhausted(60)


async def test_a_quiet_credential_is_counted_in_the_store_request_by_request() -> None:
    store, clock, mono = CountingStore(), [T], [0.0]
    replicas = [limiter(store, clock, mono) for _ in range(3)]
    who = principal()
    remaining = []
    for i in range(6):
        mono[0] += 2.0  # two seconds apart: never busy
        decision = await replicas[i % 3].check(who, Category.WRITE)
        remaining.append(decision.remaining)
    assert remaining == [49, 48, 47, 46, 45, 44]  # exact across replicas
    assert store.calls == 6


async def test_a_busy_credential_leases_and_the_limit_holds_across_replicas() -> None:
    store, clock, mono = CountingStore(), [T], [0.0]
    replicas = [limiter(store, clock, mono) for _ in range(3)]
    who = principal()
    decisions = await asyncio.gather(
        *(replicas[i % 3].check(who, Category.SINGLE) for i in range(2000))
    )
    admitted = sorted(d.count for d in decisions if d.admitted)
    assert admitted == list(range(1, 501))  # exactly the limit, each count once
    assert all(d.remaining == 0 and d.retry_after == 50 for d in decisions if not d.admitted)
    assert store.calls < 250  # leases, and no store call once the limit is passed
    calls = store.calls
    await asyncio.gather(*(replicas[i % 3].check(who, Category.SINGLE) for i in range(300)))
    assert store.calls == calls

    clock[0] = T + 60  # the next window starts from zero
    fresh = await replicas[0].check(who, Category.SINGLE)
    assert fresh.admitted and fresh.window.start == 1_800_000_060


async def test_counts_beyond_the_limit_are_refused_when_other_replicas_took_the_rest() -> None:
    store, clock, mono = CountingStore(), [T], [0.0]
    a, b = limiter(store, clock, mono), limiter(store, clock, mono)
    who = principal()
    for _ in range(50):
        assert (await a.check(who, Category.WRITE)).admitted
    refused = await b.check(who, Category.WRITE)
    assert not refused.admitted and refused.count == 51
    assert refused.headers()[-1] == ("Retry-After", "50")


async def test_a_store_that_hangs_costs_one_time_out_not_one_per_waiting_request() -> None:
    class Hanging(MemoryStore):
        async def hit(self, *args: object, **kwargs: object) -> int:
            await asyncio.sleep(10)
            return 0

    limiter = RateLimiter(
        Hanging(), Limits(), RateLimitMetrics(CollectorRegistry()), store_timeout=0.5
    )
    who = principal()
    loop = asyncio.get_running_loop()
    started = loop.time()
    decisions = await asyncio.gather(*(limiter.check(who, Category.SINGLE) for _ in range(20)))
    # Not 20 x 0.5 s = 10 s behind the lease lock; one time-out, with room for a loaded
    # machine's scheduling.
    assert loop.time() - started < 5.0
    assert all(d.admitted and d.limit == 500 // 3 for d in decisions)  # the local share
