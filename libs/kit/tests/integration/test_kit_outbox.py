"""The outbox relay: commit-order, a single active relay, and relay-crash."""

from __future__ import annotations

import asyncio
import contextlib
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

from outpost_contracts.envelope import EventEnvelope
from outpost_kit import ids
from outpost_kit.db import outbox
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


async def _wait_for(predicate, within: float = 30.0) -> None:  # type: ignore[no-untyped-def]
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
        await _wait_for(lambda: not active.active)
        await _wait_for(lambda: a.active or b.active)
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


async def _blocked_by(admin: asyncpg.Connection, holder: asyncpg.Connection) -> int | None:
    """The backend waiting on a lock ``holder`` holds (the relay's DELETE), if any."""
    pid: int | None = await admin.fetchval(
        "SELECT pid FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid))"
        " AND query LIKE 'DELETE FROM outbox%' LIMIT 1",
        holder.get_server_pid(),
    )
    return pid


async def test_relay_crash_every_event_exactly_once(
    kitsvc_db: KitDb, uow: UnitOfWorkFactory, js: JetStreamContext, nats_url: str, org: UUID
) -> None:
    """relay-crash: the relay is killed again and again while writers append, every other
    time at a random point and otherwise after JetStream acknowledged a batch the outbox
    still holds (the worst moment: its rows are published again by the next relay) with more
    rows waiting behind it; every event reaches the stream exactly once.

    The kill point is forced, not hoped for: the test pauses the relay (SIGSTOP), commits a
    burst bigger than a batch in one transaction, locks every outbox row (``FOR UPDATE``),
    lets the relay go on (SIGCONT) and waits until its DELETE of the published batch is
    blocked on that lock; then it kills the relay, ends its database session (so the DELETE
    never happens) and releases the rows. A quiet machine whose relay keeps up and a loaded
    one whose relay lags reach the same state."""
    rng = random.Random()
    written: list[str] = []
    writing_done = asyncio.Event()
    streams: list[tuple[UUID, int]] = []

    async def append(count: int) -> None:
        """``count`` transactions of ten events, a new counter or ten more increments."""
        for _ in range(count):
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

    async def burst(size: int) -> None:
        """``size`` events committed in one transaction, over fresh counters."""
        async with uow(org) as u:
            for _ in range(size // 10):
                sid = ids.new_id()
                envs = await u.events.append(
                    org_id=org,
                    stream_id=sid,
                    stream_type=STREAM_TYPE,
                    expected_version=0,
                    events=[CounterCreated(name="b"), *[CounterIncremented()] * 9],
                )
                written.extend(str(e.id) for e in envs)
            await u.commit()

    async def writer() -> None:
        while len(written) < 1200:  # with the bursts, well over 2000 events
            await append(1)
            await asyncio.sleep(0.015)  # spread the load over the kills
        writing_done.set()

    batch = 200
    relay = _start_relay(kitsvc_db, nats_url)
    kills = 0
    backlog_at_kill: list[int] = []
    acked_at_kill: list[int] = []  # rows still in the outbox whose event is in the stream
    admin = await asyncpg.connect(plain_dsn(kitsvc_db.admin_dsn))
    holder = await asyncpg.connect(plain_dsn(kitsvc_db.admin_dsn))
    outbox = f"{kitsvc_db.schema}.outbox"
    write_task = asyncio.create_task(writer())
    try:
        while kills < 8 or not writing_done.is_set():
            await asyncio.sleep(rng.uniform(0.1, 0.5))  # the relay at work, somewhere
            if kills % 2:  # every other kill at a random point, wherever the relay is
                relay.send_signal(signal.SIGKILL)
                relay.wait()
                kills += 1
                relay = _start_relay(kitsvc_db, nats_url)
                continue
            relay.send_signal(signal.SIGSTOP)
            await burst(batch + 100)
            tx = holder.transaction()
            await tx.start()
            await holder.execute(f"SELECT position FROM {outbox} FOR UPDATE")
            relay.send_signal(signal.SIGCONT)
            deadline = time.monotonic() + 60  # a loaded machine: the relay restarts slowly
            while (pid := await _blocked_by(admin, holder)) is None:
                assert time.monotonic() < deadline, "the relay never reached its DELETE"
                await asyncio.sleep(0.05)
            relay.send_signal(signal.SIGKILL)
            relay.wait()
            assert await admin.fetchval("SELECT pg_terminate_backend($1, 60000)", pid)
            await tx.rollback()
            kills += 1
            in_outbox = {
                str(r["event_id"]) for r in await admin.fetch(f"SELECT event_id FROM {outbox}")
            }
            backlog_at_kill.append(len(in_outbox))
            acked_at_kill.append(len(in_outbox & set(await read_stream(js, org))))
            relay = _start_relay(kitsvc_db, nats_url)
        await write_task
        deadline = time.monotonic() + 60  # the last relay drains what is left
        while await _outbox_count(kitsvc_db):
            assert time.monotonic() < deadline, "the last relay did not drain the outbox"
            await asyncio.sleep(0.1)
    finally:
        write_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await write_task
        relay.send_signal(signal.SIGCONT)
        relay.send_signal(signal.SIGTERM)
        try:
            relay.wait(timeout=5)
        except subprocess.TimeoutExpired:
            relay.kill()
            relay.wait()
        await holder.close()
        await admin.close()

    published = await read_stream(js, org)
    assert len(written) >= 2000
    assert kills >= 8 and len(acked_at_kill) >= 4
    # Every forced kill came after JetStream acknowledged rows the relay had not deleted yet,
    # with a batch's worth more waiting behind them.
    assert all(a > 0 for a in acked_at_kill), acked_at_kill
    assert all(b > batch for b in backlog_at_kill), backlog_at_kill
    missing = set(written) - set(published)
    duplicated = len(published) - len(set(published))
    assert not missing, f"{len(missing)} events never published"
    assert duplicated == 0, f"{duplicated} duplicate messages in the stream"
    assert len(published) == len(written)


async def test_outbox_write_publishes_on_commit_only_and_wakes_the_relay(
    kitsvc_db: KitDb, uow: UnitOfWorkFactory, js: JetStreamContext, org: UUID
) -> None:
    """``outbox.write``, the one statement that writes outbox rows outside an append
    (devices' presence events, exports' work queue): a rolled-back transaction leaves no
    row; a committed one leaves its rows, with their headers, and notifies the relay."""
    relay = OutboxRelay(kitsvc_db.dsn, kitsvc_db.schema, js)
    relay_conn = await _relay_conn(kitsvc_db)
    woken: asyncio.Queue[str] = asyncio.Queue()
    await relay_conn.add_listener(
        outbox.CHANNEL, lambda _c, _pid, _channel, payload: woken.put_nowait(payload)
    )
    try:
        await _settle(relay_conn, relay)  # other tests' leftovers
        before = await _outbox_count(kitsvc_db)

        def envelope() -> EventEnvelope:
            return EventEnvelope(
                id=ids.new_id(),
                org_id=org,
                stream_id=ids.new_id(),
                stream_type=STREAM_TYPE,
                version=1,
                occurred_at=ids.now(),
                data=CounterCreated(name="outside the store"),
            )

        async with uow(org) as u:
            await outbox.write(u.conn, [outbox.OutboxRow.of_event(envelope())])
            # no commit: rolled back
        assert await _outbox_count(kitsvc_db) == before

        kept = [envelope(), envelope()]
        async with uow(org) as u:
            await outbox.write(u.conn, [])  # nothing to write: no statement
            await outbox.write(
                u.conn, [outbox.OutboxRow.of_event(e, {"x-extra": "1"}) for e in kept]
            )
            rows = await u.execute(
                "SELECT event_id, headers->>'Nats-Msg-Id' AS msg_id,"
                " headers->>'x-extra' AS extra FROM outbox WHERE event_id = ANY(:ids)"
                " ORDER BY position",
                {"ids": [e.id for e in kept]},
            )
            assert [(r.event_id, r.msg_id, r.extra) for r in rows] == [
                (e.id, str(e.id), "1") for e in kept
            ]
            await u.commit()
        assert await asyncio.wait_for(woken.get(), timeout=60) == kitsvc_db.schema
        await _settle(relay_conn, relay)
        assert {str(e.id) for e in kept} <= set(await read_stream(js, org))
    finally:
        await relay_conn.close()
