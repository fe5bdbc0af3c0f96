"""Alerting through a Postgres outage (decision 62's rule for consumers): readings that
fire a rule arrive while Postgres is stopped immediately; the evaluator holds its batch
instead of spending the messages' deliveries, and once Postgres is back every device has
exactly one alert, with the readings' own trigger."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from typing import Any

import msgspec
import nats
import pytest
from prometheus_client import REGISTRY
from test_alerting_streaming import Env, at

from outpost_alerting import bootstrap
from outpost_alerting.adapters.projections import AlertingProjector
from outpost_alerting.app import evaluation
from outpost_alerting.entrypoints import telemetry
from outpost_contracts import alerting as api
from outpost_contracts import streams, subjects
from outpost_contracts.streams import ConsumerSpec
from outpost_devkit.infra import PostgresCluster
from outpost_kit import messaging
from outpost_kit.cli import migrations_dir
from outpost_kit.db.engine import create_engine
from outpost_kit.db.eventstore import EventCodec
from outpost_kit.db.migrate import upgrade
from outpost_kit.db.provision import provision_service
from outpost_kit.db.uow import UnitOfWorkFactory

pytestmark = pytest.mark.integration

UNAVAILABLE = "outpost_alerting_evaluation_unavailable_total"


@pytest.fixture
async def env(
    postgres_dsn: str, nats_url: str, postgres_cluster: PostgresCluster
) -> AsyncIterator[Env]:
    dsn = await provision_service(postgres_dsn, "alerting", secrets.token_urlsafe(16))
    await upgrade(postgres_dsn, "alerting", migrations_dir(bootstrap.__file__))
    engine = create_engine(dsn, "alerting", pool_size=4)
    nc = await nats.connect(nats_url)
    codec = EventCodec((*api.EVENT_TYPES, *evaluation.DEVICE_EVENTS))
    try:
        yield Env(UnitOfWorkFactory(engine, codec, (AlertingProjector(),)), nc)
    finally:
        if not postgres_cluster.running:
            await asyncio.to_thread(postgres_cluster.restart)
        await nc.close()
        await engine.dispose()


async def _consumer(env: Env, **options: Any) -> ConsumerSpec:
    """A durable consumer of this organization's telemetry, like alerting-telemetry."""
    spec = ConsumerSpec(
        stream="TELEMETRY",
        name=f"test-{secrets.token_hex(6)}",
        owner="alerting",
        filter_subjects=(f"{subjects.PREFIX}.tel.{env.org}.>",),
        **options,
    )
    await messaging.apply_streams(env.js, [streams.stream("TELEMETRY")], [spec])
    return spec


async def _settled(env: Env, spec: ConsumerSpec) -> None:
    """Until nothing is left to deliver or to ack, up to a minute (a loaded machine
    restarts Postgres slowly)."""
    for _ in range(600):
        info = await env.js.consumer_info(spec.stream, spec.name)
        if info.num_pending == 0 and info.num_ack_pending == 0:
            break
        await asyncio.sleep(0.1)


async def test_an_outage_longer_than_the_redelivery_budget_loses_no_alert(
    env: Env, postgres_cluster: PostgresCluster
) -> None:
    devices = [await env.device() for _ in range(3)]
    await env.rule()
    # Two deliveries of 0.5 s each: nak'ing through a 3 s outage would spend them all.
    spec = await _consumer(env, ack_wait_seconds=0.5, max_deliver=2)
    stop = asyncio.Event()
    loop = asyncio.create_task(telemetry.run(env.uow, env.nc, spec, 100, stop))
    try:
        await asyncio.to_thread(postgres_cluster.kill)
        for n, device in enumerate(devices):
            body = {"seq": 1, "readings": [{"sensor": "temp", "value": 40 + n, "ts": at(n)}]}
            await env.js.publish(subjects.telemetry(env.org, device), msgspec.json.encode(body))
        await asyncio.sleep(3)
        await asyncio.to_thread(postgres_cluster.restart)
        await _settled(env, spec)
    finally:
        stop.set()
        await asyncio.wait_for(loop, 20)
    alerts = await env.alerts()
    assert sorted((a.device_id, a.trigger.value) for a in alerts) == sorted(
        (d, 40 + n) for n, d in enumerate(devices)
    )


async def test_stopping_during_an_outage_hands_the_batch_back(
    env: Env, postgres_cluster: PostgresCluster
) -> None:
    """pg-restart, shutdown (ADR 0083): the evaluator is told to stop while it holds a batch
    through a Postgres outage; it stops at once, Postgres still down, and hands the batch
    back (nak) rather than waiting for the database; the next evaluator fires the alert."""
    device = await env.device()
    await env.rule()
    spec = await _consumer(env)
    held = REGISTRY.get_sample_value(UNAVAILABLE) or 0.0
    await asyncio.to_thread(postgres_cluster.kill)
    body = {"seq": 1, "readings": [{"sensor": "temp", "value": 41, "ts": at(0)}]}
    await env.js.publish(subjects.telemetry(env.org, device), msgspec.json.encode(body))
    stop = asyncio.Event()
    loop = asyncio.create_task(telemetry.run(env.uow, env.nc, spec, 100, stop))
    for _ in range(600):  # up to a minute: the batch is fetched and found the outage
        if (REGISTRY.get_sample_value(UNAVAILABLE) or 0.0) > held:
            break
        await asyncio.sleep(0.1)
    assert (REGISTRY.get_sample_value(UNAVAILABLE) or 0.0) > held, "the batch was never held"
    stop.set()
    await asyncio.wait_for(loop, 30)  # holding on would wait for Postgres: never, here
    assert not postgres_cluster.running
    await asyncio.to_thread(postgres_cluster.restart)
    stop = asyncio.Event()
    loop = asyncio.create_task(telemetry.run(env.uow, env.nc, spec, 100, stop))
    try:
        await _settled(env, spec)
    finally:
        stop.set()
        await asyncio.wait_for(loop, 20)
    assert [(a.device_id, a.trigger.value) for a in await env.alerts()] == [(device, 41)]
