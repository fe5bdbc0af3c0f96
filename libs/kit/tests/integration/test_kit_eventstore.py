"""Event store: optimistic concurrency (occ) and projection rebuild (replay)."""

from __future__ import annotations

import asyncio
import random
from typing import Any
from uuid import UUID

import msgspec
import pytest
from kitsvc import STREAM_TYPE, CounterCreated, CounterIncremented, CounterProjector, counters
from sqlalchemy.exc import IntegrityError

from outpost_contracts import subjects
from outpost_kit import ids
from outpost_kit.aggregate import Taken
from outpost_kit.db.eventstore import ConcurrencyConflict
from outpost_kit.db.replay import rebuild
from outpost_kit.db.uow import UnitOfWorkFactory

pytestmark = pytest.mark.integration


async def _create(uow: UnitOfWorkFactory, org: UUID, name: str = "c") -> UUID:
    stream = ids.new_id()
    async with uow(org) as u:
        await u.events.append(
            org_id=org,
            stream_id=stream,
            stream_type=STREAM_TYPE,
            expected_version=0,
            events=[CounterCreated(name=name)],
        )
        await u.commit()
    return stream


async def test_occ_concurrent_appends_at_same_version(uow: UnitOfWorkFactory, org: UUID) -> None:
    stream = await _create(uow, org)
    both_read = asyncio.Barrier(2)

    async def command(by: int) -> int:
        async with uow(org) as u:
            version = await u.events.version(stream)
            await both_read.wait()  # both transactions are open and saw the same version
            await u.events.append(
                org_id=org,
                stream_id=stream,
                stream_type=STREAM_TYPE,
                expected_version=version,
                events=[CounterIncremented(by=by)],
            )
            await u.commit()
            return by

    results = await asyncio.gather(command(1), command(10), return_exceptions=True)

    committed = [r for r in results if isinstance(r, int)]
    conflicts = [r for r in results if isinstance(r, ConcurrencyConflict)]
    assert len(committed) == 1, results
    assert len(conflicts) == 1, results
    async with uow(org) as u:
        assert [e.version for e in await u.events.load(stream)] == [1, 2]
        assert (await counters(u.conn))[stream][1:] == (committed[0], 2)


async def test_a_projection_refused_by_a_constraint_is_taken(
    uow: UnitOfWorkFactory, org: UUID
) -> None:
    """A read model's constraint refusing a projection (here the counter's row made twice)
    is the driver-free ``Taken`` use cases catch, and still the driver's ``IntegrityError``
    for callers that catch that (ADR 0086); nothing of the append stays."""
    stream = ids.new_id()
    async with uow(org) as u:
        with pytest.raises(Taken) as refused:
            await u.events.append(
                org_id=org,
                stream_id=stream,
                stream_type=STREAM_TYPE,
                expected_version=0,
                events=[CounterCreated(name="a"), CounterCreated(name="b")],
            )
        assert isinstance(refused.value, IntegrityError)
    async with uow(org) as u:
        assert await u.events.load(stream) == []
        assert stream not in await counters(u.conn)


@pytest.mark.parametrize("expected", [0, 1, 3])
async def test_occ_refuses_stale_and_future_versions(
    uow: UnitOfWorkFactory, org: UUID, expected: int
) -> None:
    stream = await _create(uow, org)
    async with uow(org) as u:
        await u.events.append(
            org_id=org,
            stream_id=stream,
            stream_type=STREAM_TYPE,
            expected_version=1,
            events=[CounterIncremented()],
        )
        await u.commit()

    async def command() -> None:
        async with uow(org) as u:
            await u.events.append(
                org_id=org,
                stream_id=stream,
                stream_type=STREAM_TYPE,
                expected_version=expected,
                events=[CounterIncremented()],
            )
            await u.commit()

    with pytest.raises(ConcurrencyConflict) as refused:
        await command()

    assert refused.value.actual == 2
    async with uow(org) as u:
        assert len(await u.events.load(stream)) == 2
        # The refused append left no outbox row behind (one statement: all or nothing).
        assert await _outbox_ids(u, stream) == [e.id for e in await u.events.load(stream)]


async def _outbox_ids(u: Any, stream: UUID) -> list[UUID]:
    rows = await u.execute(
        "SELECT o.event_id FROM outbox o JOIN events e ON e.event_id = o.event_id"
        " WHERE e.stream_id = :s ORDER BY o.position",
        {"s": stream},
    )
    return [r.event_id for r in rows]


async def test_an_append_of_several_events_writes_each_with_its_outbox_row(
    uow: UnitOfWorkFactory, org: UUID
) -> None:
    stream = ids.new_id()
    async with uow(org) as u:
        appended = await u.events.append(
            org_id=org,
            stream_id=stream,
            stream_type=STREAM_TYPE,
            expected_version=0,
            events=[CounterCreated(name="many"), CounterIncremented(), CounterIncremented()],
            request_id="req-many",
        )
        await u.commit()
    assert [e.version for e in appended] == [1, 2, 3]
    async with uow(org) as u:
        loaded = await u.events.load(stream)
        assert [(e.id, e.version, e.type, e.request_id) for e in loaded] == [
            (e.id, e.version, e.type, "req-many") for e in appended
        ]
        assert await _outbox_ids(u, stream) == [e.id for e in appended]
        rows = await u.execute(
            "SELECT o.subject, o.headers->>'Nats-Msg-Id' AS msg_id, o.payload"
            " FROM outbox o JOIN events e ON e.event_id = o.event_id"
            " WHERE e.stream_id = :s ORDER BY o.position",
            {"s": stream},
        )
        for row, envelope in zip(rows, appended, strict=True):
            assert row.msg_id == str(envelope.id)
            assert row.subject == subjects.event(envelope.type, org)
            assert msgspec.json.decode(bytes(row.payload)) == msgspec.to_builtins(envelope)


async def test_replay_rebuilds_the_live_projection(
    uow: UnitOfWorkFactory, projector: CounterProjector, org: UUID
) -> None:
    rng = random.Random(7)
    other_org = ids.new_id()
    await _create(uow, other_org, "other tenant")  # must survive our rebuild untouched
    versions: dict[UUID, int] = {}
    for step in range(300):
        async with uow(org) as u:
            if not versions or rng.random() < 0.15:
                stream = ids.new_id()
                await u.events.append(
                    org_id=org,
                    stream_id=stream,
                    stream_type=STREAM_TYPE,
                    expected_version=0,
                    events=[CounterCreated(name=f"counter-{step}")],
                )
                versions[stream] = 1
            else:
                stream = rng.choice(list(versions))
                batch = [
                    CounterIncremented(by=rng.randint(-5, 20)) for _ in range(rng.randint(1, 3))
                ]
                await u.events.append(
                    org_id=org,
                    stream_id=stream,
                    stream_type=STREAM_TYPE,
                    expected_version=versions[stream],
                    events=batch,
                )
                versions[stream] += len(batch)
            await u.commit()
    async with uow(org) as u:
        live = await counters(u.conn)
    async with uow(other_org) as u:
        other_before = await counters(u.conn)

    async with uow(org) as u:
        applied = await rebuild(u, projector, batch=97)
        await u.commit()

    async with uow(org) as u:
        rebuilt = await counters(u.conn)
    async with uow(other_org) as u:
        assert await counters(u.conn) == other_before
    assert applied == sum(versions.values())
    assert rebuilt == live
    assert {k: v[2] for k, v in live.items()} == versions
