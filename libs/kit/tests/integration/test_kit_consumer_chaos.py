"""The inbox consumer through a Postgres outage longer than its redelivery budget
(docs/design/reliability.md pg-restart): the message is kept and its ack wait renewed, nothing is
dead-lettered, every event is applied once when the database is back. It stops the
session's Postgres, so it runs last (``outpost_devkit.testing.fixtures``)."""

from __future__ import annotations

import asyncio
import secrets
import time
from uuid import UUID

import asyncpg
import pytest
from kitsvc import CODEC, CounterProjector, KitDb, consumer_spec
from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeout
from nats.js.client import JetStreamContext
from prometheus_client import REGISTRY
from sqlalchemy.ext.asyncio import AsyncEngine
from test_kit_consumer import _publish_counters

from outpost_contracts.envelope import EventEnvelope
from outpost_contracts.streams import ConsumerSpec
from outpost_devkit.infra import PostgresCluster
from outpost_kit.consumer import InboxConsumer
from outpost_kit.db.engine import plain_dsn
from outpost_kit.db.uow import UnitOfWork, UnitOfWorkFactory
from outpost_kit.messaging import apply_streams

pytestmark = pytest.mark.integration


@pytest.fixture
def plain_uow(engine: AsyncEngine) -> UnitOfWorkFactory:
    """Appends without projections: here the consumer is what maintains ``counters``."""
    return UnitOfWorkFactory(engine, CODEC)


def _waited(spec: ConsumerSpec) -> float:
    """How often the consumer found the database down and kept its message."""
    sample = REGISTRY.get_sample_value(
        "outpost_consumer_database_waits_total", {"consumer": spec.name}
    )
    return sample or 0.0


async def _restart_until_processed(
    postgres_cluster: PostgresCluster, consumer: InboxConsumer, n: int
) -> None:
    await asyncio.to_thread(postgres_cluster.restart)
    deadline = time.monotonic() + 60  # a loaded machine restarts Postgres slowly
    while consumer.processed < n:
        assert time.monotonic() < deadline, f"{consumer.processed} of {n} processed"
        await asyncio.sleep(0.05)


async def test_a_database_outage_longer_than_the_budget_dead_letters_nothing(
    kitsvc_db: KitDb,
    plain_uow: UnitOfWorkFactory,
    js: JetStreamContext,
    org: UUID,
    postgres_cluster: PostgresCluster,
) -> None:
    spec = consumer_spec(f"kit-outage-{secrets.token_hex(4)}", org, ack_wait=1, max_deliver=2)
    await apply_streams(js, [], [spec])
    names = [f"c{i}" for i in range(5)]
    await _publish_counters(kitsvc_db, plain_uow, js, org, names, 2)  # 5 x 3 events
    applied: list[tuple[UUID, int]] = []

    async def handler(uow: UnitOfWork, envelope: EventEnvelope) -> None:
        await CounterProjector().apply(uow.conn, envelope)
        applied.append((envelope.stream_id, envelope.version))

    waits = f'outpost_consumer_database_waits_total{{consumer="{spec.name}"}}'

    consumer = InboxConsumer(plain_uow, js, spec, handler, CODEC, batch_size=10)
    stop = asyncio.Event()
    await asyncio.to_thread(postgres_cluster.kill)
    task = asyncio.create_task(consumer.run(stop))
    try:
        deadline = time.monotonic() + 60  # a loaded machine restarts Postgres slowly
        while _waited(spec) == 0:  # the consumer found the database down and kept its message
            assert time.monotonic() < deadline, f"{waits} never moved"
            await asyncio.sleep(0.05)
        budget = spec.max_deliver * spec.ack_wait_seconds
        await asyncio.sleep(2 * budget)  # the outage: twice the redelivery budget
        during = await js.consumer_info(spec.stream, spec.name)
        await _restart_until_processed(postgres_cluster, consumer, 15)
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)
        if not postgres_cluster.running:
            await asyncio.to_thread(postgres_cluster.restart)
    conn = await asyncpg.connect(
        plain_dsn(kitsvc_db.admin_dsn), server_settings={"search_path": kitsvc_db.schema}
    )
    try:
        letters = await conn.fetchval(
            "SELECT count(*) FROM dead_letters WHERE consumer = $1", spec.name
        )
        values = await conn.fetch(
            "SELECT name, value FROM counters WHERE org_id = $1 ORDER BY name", org
        )
    finally:
        await conn.close()
    assert letters == 0
    assert [(r["name"], r["value"]) for r in values] == [(n, 2) for n in names]
    assert len(set(applied)) == 15  # every event applied (the values above: each once)
    assert during.num_redelivered == 0  # the kept message's lease was renewed


async def test_the_rest_of_a_held_batch_keeps_its_lease(
    kitsvc_db: KitDb,
    plain_uow: UnitOfWorkFactory,
    js: JetStreamContext,
    org: UUID,
    postgres_cluster: PostgresCluster,
) -> None:
    """pg-restart (ADR 0083): while the consumer holds the first message of a fetched
    batch through an outage, the messages behind it keep their lease too: another pull on
    the same consumer gets none of them over twice the ack wait. (They used to lapse and
    be delivered again, spending a delivery each.)"""
    spec = consumer_spec(f"kit-rest-{secrets.token_hex(4)}", org, ack_wait=4, max_deliver=5)
    await apply_streams(js, [], [spec])
    await _publish_counters(kitsvc_db, plain_uow, js, org, ["a", "b", "c"], 1)  # 3 x 2 events

    async def handler(uow: UnitOfWork, envelope: EventEnvelope) -> None:
        await CounterProjector().apply(uow.conn, envelope)

    consumer = InboxConsumer(plain_uow, js, spec, handler, CODEC, batch_size=10)
    stop = asyncio.Event()
    await asyncio.to_thread(postgres_cluster.kill)
    task = asyncio.create_task(consumer.run(stop))
    lapsed: list[Msg] = []
    try:
        deadline = time.monotonic() + 60
        while _waited(spec) == 0 or (await js.consumer_info(spec.stream, spec.name)).num_pending:
            # the consumer fetched all six and holds the first
            assert time.monotonic() < deadline, "the consumer never held its batch"
            await asyncio.sleep(0.05)
        probe = await js.pull_subscribe_bind(spec.name, stream=spec.stream)
        try:
            lapsed = await probe.fetch(1, timeout=2 * spec.ack_wait_seconds)
        except NatsTimeout:
            pass  # nothing lapsed: nothing delivered again
        finally:
            await probe.unsubscribe()
        await _restart_until_processed(postgres_cluster, consumer, 6)
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)
        if not postgres_cluster.running:
            await asyncio.to_thread(postgres_cluster.restart)
    assert [m.metadata.num_delivered for m in lapsed] == []
