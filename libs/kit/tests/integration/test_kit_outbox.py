"""The outbox relay: commit-order, a single active relay, and relay-crash."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
from uuid import UUID

import asyncpg
import pytest
from kitsvc import STREAM_TYPE, CounterCreated, CounterIncremented, KitDb, read_stream
from nats.js.client import JetStreamContext

from outpost_kit import ids
from outpost_kit.db.engine import plain_dsn
from outpost_kit.db.outbox import OutboxRelay
from outpost_kit.db.uow import UnitOfWorkFactory

pytestmark = pytest.mark.integration


async def _outbox_count(db: KitDb) -> int:
    conn = await asyncpg.connect(plain_dsn(db.admin_dsn))
    try:
        return int(await conn.fetchval(f"SELECT count(*) FROM {db.schema}.outbox"))
    finally:
        await conn.close()


async def _relay_conn(db: KitDb) -> asyncpg.Connection:
    return await asyncpg.connect(plain_dsn(db.dsn), server_settings={"search_path": db.schema})


async def _settle(relay_conn: asyncpg.Connection, relay: OutboxRelay) -> None:
    while await relay.drain_once(relay_conn):
        pass


async def test_commit_order_both_published(
    kitsvc_db: KitDb, uow: UnitOfWorkFactory, js: JetStreamContext, org: UUID
) -> None:
    relay = OutboxRelay(kitsvc_db.dsn, kitsvc_db.schema, js)
    relay_conn = await _relay_conn(kitsvc_db)
    try:
        await _settle(relay_conn, relay)  # other tests' leftovers
        first, second = uow(org), uow(org)
        async with first as t1, second as t2:
            [e1] = await t1.events.append(
                org_id=org,
                stream_id=ids.new_id(),
                stream_type=STREAM_TYPE,
                expected_version=0,
                events=[CounterCreated(name="first")],
            )
            p1 = (await t1.execute("SELECT max(position) FROM outbox")).scalar_one()
            [e2] = await t2.events.append(
                org_id=org,
                stream_id=ids.new_id(),
                stream_type=STREAM_TYPE,
                expected_version=0,
                events=[CounterCreated(name="second")],
            )
            p2 = (await t2.execute("SELECT max(position) FROM outbox")).scalar_one()
            assert p1 < p2

            await t2.commit()
            assert await relay.drain_once(relay_conn) == 1  # only p2 is visible
            await t1.commit()
        assert await relay.drain_once(relay_conn) == 1  # p1, committed after the poll

        assert sorted(await read_stream(js, org)) == sorted([str(e1.id), str(e2.id)])
        assert await _outbox_count(kitsvc_db) == 0
    finally:
        await relay_conn.close()


async def _wait_for(predicate, within: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.02)


async def test_single_active_relay_and_takeover(kitsvc_db: KitDb, js: JetStreamContext) -> None:
    a = OutboxRelay(kitsvc_db.dsn, kitsvc_db.schema, js, lock_retry=0.1, idle_wait=0.1)
    b = OutboxRelay(kitsvc_db.dsn, kitsvc_db.schema, js, lock_retry=0.1, idle_wait=0.1)
    stop = asyncio.Event()
    both_active = 0

    async def watch() -> None:
        nonlocal both_active
        while not stop.is_set():
            both_active += a.active and b.active
            await asyncio.sleep(0.005)

    tasks = [asyncio.create_task(r.run(stop)) for r in (a, b)] + [asyncio.create_task(watch())]
    admin = await asyncpg.connect(plain_dsn(kitsvc_db.admin_dsn))
    try:
        await _wait_for(lambda: a.active or b.active)
        await asyncio.sleep(0.5)  # the standby retried several times and stayed standby
        assert a.active != b.active
        active, standby = (a, b) if a.active else (b, a)

        killed = await admin.fetchval(
            "SELECT pg_terminate_backend(l.pid) FROM pg_locks l"
            " WHERE l.locktype = 'advisory' AND l.granted"
            " AND l.objid = hashtext($1)::oid",
            f"outpost.outbox.{kitsvc_db.schema}",
        )
        assert killed
        await _wait_for(lambda: not active.active, within=5)
        await _wait_for(lambda: a.active or b.active, within=5)
        await asyncio.sleep(0.5)
        assert a.active != b.active
        assert both_active == 0
    finally:
        stop.set()
        await asyncio.gather(*tasks)
        await admin.close()
    assert (a.active, b.active) == (False, False)
    del standby


def _start_relay(db: KitDb, nats_url: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "outpost_kit.db.outbox_main",
            "--dsn",
            db.dsn,
            "--schema",
            db.schema,
            "--nats",
            nats_url,
            "--batch-size",
            "200",
        ],
        stdout=subprocess.DEVNULL,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


async def test_relay_crash_every_event_exactly_once(
    kitsvc_db: KitDb, uow: UnitOfWorkFactory, js: JetStreamContext, nats_url: str, org: UUID
) -> None:
    rng = random.Random()
    written: list[str] = []
    writing_done = asyncio.Event()

    async def writer() -> None:
        streams: list[tuple[UUID, int]] = []
        while len(written) < 2500:
            async with uow(org) as u:
                if not streams or rng.random() < 0.2:
                    sid = ids.new_id()
                    envs = await u.events.append(
                        org_id=org,
                        stream_id=sid,
                        stream_type=STREAM_TYPE,
                        expected_version=0,
                        events=[CounterCreated(name="c"), *[CounterIncremented()] * 9],
                    )
                    streams.append((sid, 10))
                else:
                    i = rng.randrange(len(streams))
                    sid, version = streams[i]
                    envs = await u.events.append(
                        org_id=org,
                        stream_id=sid,
                        stream_type=STREAM_TYPE,
                        expected_version=version,
                        events=[CounterIncremented()] * 10,
                    )
                    streams[i] = (sid, version + 10)
                await u.commit()
            written.extend(str(e.id) for e in envs)
            await asyncio.sleep(0.015)  # spread the load over the kills
        writing_done.set()

    relay = _start_relay(kitsvc_db, nats_url)
    kills = 0
    backlog_at_kill: list[int] = []
    write_task = asyncio.create_task(writer())
    try:
        while kills < 6 or not writing_done.is_set():
            await asyncio.sleep(rng.uniform(0.3, 1.2))
            relay.send_signal(signal.SIGKILL)
            relay.wait()
            kills += 1
            backlog_at_kill.append(await _outbox_count(kitsvc_db))
            relay = _start_relay(kitsvc_db, nats_url)
        await write_task
        for _ in range(200):  # the last relay drains what is left (at most 20 s)
            if not await _outbox_count(kitsvc_db):
                break
            await asyncio.sleep(0.1)
    finally:
        relay.send_signal(signal.SIGTERM)
        try:
            relay.wait(timeout=5)
        except subprocess.TimeoutExpired:
            relay.kill()
            relay.wait()

    assert await _outbox_count(kitsvc_db) == 0
    published = await read_stream(js, org)
    assert len(written) >= 2000
    assert kills >= 5
    assert sum(1 for b in backlog_at_kill if b) >= 3, backlog_at_kill  # killed mid-work
    missing = set(written) - set(published)
    duplicated = len(published) - len(set(published))
    assert not missing, f"{len(missing)} events never published"
    assert duplicated == 0, f"{duplicated} duplicate messages in the stream"
    assert len(published) == len(written)
