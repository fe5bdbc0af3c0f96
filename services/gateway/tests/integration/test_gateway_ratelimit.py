"""The gateway's shared store against a real Postgres: atomic counts across replicas, and
Idempotency-Key claims, replays and conflicts."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from uuid import uuid4

import asyncpg
import pytest
from prometheus_client import CollectorRegistry

from outpost_contracts.envelope import Principal, PrincipalKind
from outpost_gateway import bootstrap
from outpost_gateway.adapters.gateway_store import GatewayStore
from outpost_gateway.app.rate_limiter import RateLimiter, RateLimitMetrics
from outpost_gateway.domain.idempotency import Record, StoredResponse, Verdict, judge
from outpost_gateway.domain.ratelimit import Category, Limits, window_at
from outpost_kit.cli import migrate, migrations_dir
from outpost_kit.db.provision import service_dsn

pytestmark = pytest.mark.integration

REPLICAS = 3


@pytest.fixture(scope="module")
async def gateway_dsn(postgres_dsn: str) -> str:
    password = secrets.token_urlsafe(16)
    await migrate(
        "gateway",
        migrations_dir(bootstrap.__file__),
        {"OUTPOST_ADMIN_DATABASE_URL": postgres_dsn, "OUTPOST_GATEWAY_DB_PASSWORD": password},
    )
    return service_dsn(postgres_dsn, "gateway", password)


@pytest.fixture
async def replicas(gateway_dsn: str) -> AsyncIterator[list[GatewayStore]]:
    """Three stores with their own pools, as three gateway replicas would have."""
    stores = [await GatewayStore.connect(gateway_dsn, pool_size=20) for _ in range(REPLICAS)]
    try:
        yield stores
    finally:
        for store in stores:
            await store.close()


async def test_the_schema_is_owned_by_the_owner_role_and_windows_are_unlogged(
    gateway_dsn: str, postgres_dsn: str
) -> None:
    conn = await asyncpg.connect(postgres_dsn.replace("postgresql+asyncpg", "postgresql"))
    try:
        rows = await conn.fetch(
            "SELECT c.relname, c.relpersistence::text, pg_get_userbyid(c.relowner) AS owner"
            " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = 'gateway' AND c.relkind = 'r'"
        )
    finally:
        await conn.close()
    tables = {r["relname"]: (r["relpersistence"], r["owner"]) for r in rows}
    assert tables["rate_limit_windows"] == ("u", "outpost_gateway_owner")
    assert tables["idempotency_keys"] == ("p", "outpost_gateway_owner")
    assert tables["rate_limit_overrides"] == ("p", "outpost_gateway_owner")


async def test_500_concurrent_increments_over_three_replicas_admit_exactly_the_limit(
    replicas: list[GatewayStore],
) -> None:
    org, credential = uuid4(), uuid4()
    now = 1_800_000_010.0  # one fixed window for every request
    limiters = [
        RateLimiter(
            store,
            Limits(),
            RateLimitMetrics(CollectorRegistry()),
            store_timeout=10.0,
            clock=lambda: now,
        )
        for store in replicas
    ]
    principal = Principal(kind=PrincipalKind.API_KEY, id=credential, org_id=org)
    decisions = await asyncio.gather(
        *(limiters[i % REPLICAS].check(principal, Category.LIST) for i in range(500))
    )
    admitted = [d for d in decisions if d.admitted]
    assert len(admitted) == 50
    # Each admitted request holds its own count: none repeated, none beyond the limit.
    assert sorted(d.count for d in admitted) == list(range(1, 51))
    assert {d.window.end for d in decisions} == {window_at(now).end}
    refused = [d for d in decisions if not d.admitted]
    assert all(d.remaining == 0 and d.retry_after == 50 for d in refused)
    assert sum(lim.metrics.store_errors._value.get() for lim in limiters) == 0


async def test_overrides_per_organization_are_read_through_the_cache(
    replicas: list[GatewayStore],
) -> None:
    org, credential = uuid4(), uuid4()
    await replicas[0].set_override(org, "write", 3)
    limiter = RateLimiter(replicas[1], Limits(), RateLimitMetrics(CollectorRegistry()))
    principal = Principal(kind=PrincipalKind.API_KEY, id=credential, org_id=org)
    decisions = [await limiter.check(principal, Category.WRITE) for _ in range(4)]
    assert [d.admitted for d in decisions] == [True, True, True, False]
    assert decisions[0].limit == 3
    assert (await limiter.check(principal, Category.SINGLE)).limit == 500


async def test_a_store_that_does_not_answer_fails_open_to_a_local_share() -> None:
    class Down:
        async def hit(self, *args: object) -> int:
            raise OSError("connection refused")

        async def overrides(self, *args: object) -> dict[str, int]:
            raise OSError("connection refused")

    metrics = RateLimitMetrics(CollectorRegistry())
    limiter = RateLimiter(Down(), Limits(), metrics, assumed_replicas=3)
    principal = Principal(kind=PrincipalKind.API_KEY, id=uuid4(), org_id=uuid4())
    decisions = [await limiter.check(principal, Category.WRITE) for _ in range(20)]
    assert sum(d.admitted for d in decisions) == 16  # 50 // 3
    assert decisions[0].limit == 16
    assert metrics.store_errors._value.get() >= 20


async def test_idempotency_claim_replay_conflict_and_takeover(
    replicas: list[GatewayStore],
) -> None:
    a, b, c = replicas
    org, credential, key = uuid4(), uuid4(), "order-42"
    first, other = b"\x01" * 32, b"\x02" * 32
    # Concurrent claims of one key from three replicas: exactly one wins.
    results = await asyncio.gather(*(s.claim(credential, key, org, first) for s in replicas))
    assert sum(r is None for r in results) == 1
    in_flight = next(r for r in results if r is not None)
    assert judge(in_flight, first) is Verdict.IN_FLIGHT
    response = StoredResponse(201, (("content-type", "application/json"),), b'{"id":"x"}')
    await a.complete(credential, key, org, response)
    record = await b.claim(credential, key, org, first)
    assert record == Record(request_hash=first, response=response)
    assert judge(record, first) is Verdict.REPLAY
    mismatch = await c.claim(credential, key, org, other)
    assert mismatch is not None and judge(mismatch, other) is Verdict.MISMATCH
    # Another credential has its own keys, and so has the same credential in another
    # organization (an operator's X-Organization, decision 78), whose record is its own.
    assert await a.claim(uuid4(), key, org, other) is None
    elsewhere = uuid4()
    assert await b.claim(credential, key, elsewhere, first) is None
    theirs = StoredResponse(201, (), b'{"id":"y"}')
    await b.complete(credential, key, elsewhere, theirs)
    assert await c.claim(credential, key, elsewhere, first) == Record(first, theirs)
    assert await c.claim(credential, key, org, first) == Record(first, response)
    # A released claim (a 5xx) can be claimed again.
    assert await a.claim(credential, "k2", org, first) is None
    await a.release(credential, "k2", org)
    assert await b.claim(credential, "k2", org, first) is None


async def test_abandoned_and_expired_keys_are_taken_over_and_purged(gateway_dsn: str) -> None:
    store = await GatewayStore.connect(
        gateway_dsn, idempotency_ttl_seconds=0.2, claim_timeout_seconds=0.1
    )
    try:
        org, credential = uuid4(), uuid4()
        assert await store.claim(credential, "k", org, b"a") is None
        await asyncio.sleep(0.15)  # the first request's replica died: taken over
        assert await store.claim(credential, "k", org, b"a") is None
        await store.complete(credential, "k", org, StoredResponse(200, (), b"{}"))
        await asyncio.sleep(0.25)  # past the time-to-live: a new request
        assert await store.claim(credential, "k", org, b"b") is None
        await asyncio.sleep(0.25)
        _, purged = await store.purge(0)
        assert purged >= 1
    finally:
        await store.close()
