"""The inbox consumer: exactly-once effects across a crash between commit and ack
(consumer-crash), and dead letters that do not block the stream (poison)."""

from __future__ import annotations

import asyncio
import secrets
import signal
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from uuid import UUID

import asyncpg
import msgspec
import pytest
from kitsvc import (
    CODEC,
    STREAM_TYPE,
    CounterCreated,
    CounterIncremented,
    CounterProjector,
    KitDb,
    consumer_spec,
    counters,
)
from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeout
from nats.js.client import JetStreamContext
from sqlalchemy.ext.asyncio import AsyncEngine

from outpost_contracts import subjects
from outpost_contracts.envelope import EventEnvelope
from outpost_kit import ids
from outpost_kit.consumer import DUPLICATES, InboxConsumer, PermanentFailure
from outpost_kit.db.engine import plain_dsn
from outpost_kit.db.outbox import OutboxRelay
from outpost_kit.db.uow import UnitOfWork, UnitOfWorkFactory
from outpost_kit.messaging import MSG_ID, apply_streams

pytestmark = pytest.mark.integration


@pytest.fixture
def plain_uow(engine: AsyncEngine) -> UnitOfWorkFactory:
    """Appends without projections: here the consumer is what maintains ``counters``."""
    return UnitOfWorkFactory(engine, CODEC)


@pytest.fixture
async def admin(kitsvc_db: KitDb) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(
        plain_dsn(kitsvc_db.admin_dsn), server_settings={"search_path": kitsvc_db.schema}
    )
    yield conn
    await conn.close()


async def _publish_counters(
    db: KitDb,
    uow: UnitOfWorkFactory,
    js: JetStreamContext,
    org: UUID,
    names: list[str],
    increments: int,
) -> dict[str, UUID]:
    """Append a counter per name (created, then incremented) and relay it to the stream."""
    streams: dict[str, UUID] = {}
    for name in names:
        streams[name] = ids.new_id()
        async with uow(org) as u:
            await u.events.append(
                org_id=org,
                stream_id=streams[name],
                stream_type=STREAM_TYPE,
                expected_version=0,
                events=[CounterCreated(name=name), *[CounterIncremented()] * increments],
            )
            await u.commit()
    relay = OutboxRelay(db.dsn, db.schema, js)
    conn = await asyncpg.connect(plain_dsn(db.dsn), server_settings={"search_path": db.schema})
    try:
        while await relay.drain_once(conn):
            pass
    finally:
        await conn.close()
    return streams


async def _all_acked(js: JetStreamContext, stream: str, consumer: str) -> bool:
    info = await js.consumer_info(stream, consumer)
    return (info.num_ack_pending, info.num_pending) == (0, 0)


async def _until(predicate, within: float) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + within
    while not await predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.05)


async def test_consumer_crash_between_commit_and_ack_applies_each_event_once(
    kitsvc_db: KitDb,
    plain_uow: UnitOfWorkFactory,
    js: JetStreamContext,
    org: UUID,
    admin: asyncpg.Connection,
) -> None:
    # Ten seconds to ack: only the crashed messages come back, however slowly a loaded
    # machine works through a batch (with 1 s, a batch's last message could expire while
    # the first ones were applied, and its redelivery count as one more duplicate).
    spec = consumer_spec(f"kit-crash-{secrets.token_hex(4)}", org, ack_wait=10.0)
    await apply_streams(js, [], [spec])
    streams = await _publish_counters(kitsvc_db, plain_uow, js, org, ["a", "b", "c", "d", "e"], 9)
    projector = CounterProjector()
    handled: list[UUID] = []

    async def handler(uow: UnitOfWork, envelope: EventEnvelope) -> None:
        await projector.apply(uow.conn, envelope)
        handled.append(envelope.id)

    consumer = InboxConsumer(plain_uow, js, spec, handler, CODEC, batch_size=10)
    crashes = 0

    async def incarnation(crash_at: int) -> None:
        """A consumer process that dies after the commit of its ``crash_at``-th message,
        before acking it, abandoning the rest of its batch unacked too."""
        nonlocal crashes
        sub = await js.pull_subscribe_bind(spec.name, stream=spec.stream)
        seen = 0
        try:
            while True:
                try:
                    batch = await sub.fetch(10, timeout=30)  # a loaded machine is slow
                except NatsTimeout:
                    return  # nothing left to crash on (the assertion on crashes says so)
                for msg in batch:
                    seen += 1
                    if seen == crash_at:
                        _crash_on_ack(msg)
                    try:
                        await consumer.process(msg)
                    except SystemExit:
                        crashes += 1
                        return
        finally:
            await sub.unsubscribe()

    for crash_at in (3, 9, 4, 12):
        await incarnation(crash_at)

    stop = asyncio.Event()
    final = asyncio.create_task(consumer.run(stop))

    async def settled() -> bool:
        # Every message acked: nothing can come back any more (a count observed while
        # redeliveries are still on their way would depend on the machine's speed).
        n = await admin.fetchval("SELECT count(*) FROM inbox WHERE consumer = $1", spec.name)
        return bool(n == 50) and await _all_acked(js, spec.stream, spec.name)

    try:
        await _until(settled, within=90)
    finally:
        stop.set()
        await final

    assert crashes == 4, "an incarnation found nothing to crash on"
    # Each crashed message came back and its inbox row turned the redelivery into a no-op.
    assert DUPLICATES.labels(spec.name)._value.get() == crashes
    assert len(handled) == len(set(handled)) == 50  # each effect once
    async with plain_uow(org) as u:
        assert await counters(u.conn) == {sid: (name, 9, 10) for name, sid in streams.items()}
    info = await js.consumer_info(spec.stream, spec.name)
    assert (info.num_ack_pending, info.num_pending) == (0, 0)
    await js.delete_consumer(spec.stream, spec.name)


async def test_consumer_process_killed_between_commit_and_ack_applies_each_event_once(
    kitsvc_db: KitDb,
    plain_uow: UnitOfWorkFactory,
    js: JetStreamContext,
    nats_url: str,
    org: UUID,
    admin: asyncpg.Connection,
) -> None:
    """consumer-crash with real processes: each incarnation is SIGKILLed right after the
    commit of its N-th message, before the ack; JetStream redelivers after ack_wait."""
    spec = consumer_spec(f"kit-kill-{secrets.token_hex(4)}", org, ack_wait=1.0)
    await apply_streams(js, [], [spec])
    streams = await _publish_counters(kitsvc_db, plain_uow, js, org, ["a", "b", "c", "d", "e"], 9)
    here = Path(__file__).parent
    command = [
        sys.executable,
        "-m",
        "kitsvc.consumer_main",
        "--dsn",
        kitsvc_db.dsn,
        "--schema",
        kitsvc_db.schema,
        "--nats",
        nats_url,
        "--consumer",
        spec.name,
        "--org",
        str(org),
        "--ack-wait",
        "1.0",
    ]
    killed = 0
    for crash_at in (3, 9, 4, 12):
        child = await asyncio.create_subprocess_exec(
            *command, "--crash-at", str(crash_at), cwd=here
        )
        code = await asyncio.wait_for(child.wait(), 60)
        killed += code == -signal.SIGKILL
    assert killed == 4, "every incarnation should have died at its crash point"
    # The survivor runs until every message is acked (the killed ones' unacked messages come
    # back after ack_wait), however long a loaded machine takes, then stops cleanly.
    survivor = await asyncio.create_subprocess_exec(*command, "--seconds", "300", cwd=here)
    try:
        await _until(lambda: _all_acked(js, spec.stream, spec.name), within=90)
    finally:
        if survivor.returncode is None:
            survivor.terminate()
    assert await asyncio.wait_for(survivor.wait(), 60) == 0

    assert await admin.fetchval("SELECT count(*) FROM inbox WHERE consumer = $1", spec.name) == 50
    async with plain_uow(org) as u:
        # The projector adds on every apply: a second application would show in the values.
        assert await counters(u.conn) == {sid: (name, 9, 10) for name, sid in streams.items()}
    info = await js.consumer_info(spec.stream, spec.name)
    assert (info.num_ack_pending, info.num_pending) == (0, 0)
    await js.delete_consumer(spec.stream, spec.name)


def _crash_on_ack(msg: Msg) -> None:
    async def crash(*_args: object, **_kwargs: object) -> None:
        raise SystemExit("killed after commit, before ack")

    msg.ack = crash  # type: ignore[method-assign]


async def test_poison_message_is_dead_lettered_and_does_not_block(
    kitsvc_db: KitDb,
    plain_uow: UnitOfWorkFactory,
    js: JetStreamContext,
    org: UUID,
    admin: asyncpg.Connection,
    nc: object,
) -> None:
    spec = consumer_spec(f"kit-poison-{secrets.token_hex(4)}", org, ack_wait=5, max_deliver=4)
    await apply_streams(js, [], [spec])
    calls: list[tuple[str, int]] = []
    names = {}

    async def handler(uow: UnitOfWork, envelope: EventEnvelope) -> None:
        name = names.get(envelope.stream_id, "?")
        if isinstance(envelope.data, CounterCreated):
            name = names[envelope.stream_id] = envelope.data.name
        calls.append((name, envelope.version))
        if name == "poison":
            raise RuntimeError("poison pill: always fails")
        if name == "permanent":
            raise PermanentFailure("counter names may not be 'permanent'")
        await CounterProjector().apply(uow.conn, envelope)

    streams = await _publish_counters(kitsvc_db, plain_uow, js, org, ["poison"], 0)
    junk_subject = subjects.event(CounterCreated.__struct_config__.tag, org)  # type: ignore[arg-type]
    await js.publish(junk_subject, b"\x00not json", headers={MSG_ID: "junk-1"})
    bad = msgspec.json.encode({"id": "nope", "data": {"type": "kitsvc.CounterCreated.v1"}})
    await js.publish(junk_subject, bad, headers={MSG_ID: "junk-2"})
    for names_, increments in ((["after-1"], 2), (["permanent"], 0), (["after-2", "after-3"], 2)):
        streams |= await _publish_counters(kitsvc_db, plain_uow, js, org, names_, increments)

    consumer = InboxConsumer(plain_uow, js, spec, handler, CODEC, batch_size=1)
    stop = asyncio.Event()
    task = asyncio.create_task(consumer.run(stop))

    async def settled() -> bool:
        n = await admin.fetchval("SELECT count(*) FROM dead_letters WHERE consumer = $1", spec.name)
        return bool(n == 4) and await _all_acked(js, spec.stream, spec.name)

    try:
        await _until(settled, within=60)
    finally:
        stop.set()
        await task

    letters = {
        r["message_id"]: r
        for r in await admin.fetch(
            "SELECT message_id, reason, error_class, attempts FROM dead_letters"
            " WHERE consumer = $1",
            spec.name,
        )
    }
    assert len(letters) == 4
    async with plain_uow(org) as u:
        events = {e.stream_id: e for sid in streams.values() for e in await u.events.load(sid)}
        live = await counters(u.conn)
    poison_id = str(next(e.id for e in events.values() if e.stream_id == streams["poison"]))
    permanent_id = str(
        next(
            e.id for e in events.values() if e.stream_id == streams["permanent"] and e.version == 1
        )
    )
    poison = letters[poison_id]
    assert (poison["error_class"], poison["attempts"]) == ("RuntimeError", 4)
    assert "poison pill" in poison["reason"]
    permanent = letters[permanent_id]
    assert (permanent["error_class"], permanent["attempts"]) == ("PermanentFailure", 1)
    assert "may not be 'permanent'" in permanent["reason"]
    for junk in ("junk-1", "junk-2"):
        assert (letters[junk]["error_class"], letters[junk]["attempts"]) == ("PermanentFailure", 1)
        assert "undecodable" in letters[junk]["reason"] or "JSON" in letters[junk]["reason"]
    assert [c for c in calls if c[0] == "poison"] == [("poison", 1)] * 4
    # The messages behind the poison pill were handled while it was still being retried.
    last_poison = max(i for i, c in enumerate(calls) if c[0] == "poison")
    assert calls.index(("after-1", 1)) < last_poison
    assert {v[0]: v[1:] for v in live.values()} == {
        "after-1": (2, 3),
        "after-2": (2, 3),
        "after-3": (2, 3),
    }
    info = await js.consumer_info(spec.stream, spec.name)
    assert (info.num_ack_pending, info.num_pending) == (0, 0)
    await js.delete_consumer(spec.stream, spec.name)
