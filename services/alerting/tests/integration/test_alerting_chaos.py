"""Alerting through a Postgres outage (decision 62's rule for consumers): readings that
fire a rule arrive while Postgres is stopped immediately; the evaluator holds its batch
instead of spending the messages' deliveries, and once Postgres is back every device has
exactly one alert, with the readings' own trigger."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator

import msgspec
import nats
import pytest
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


async def test_an_outage_longer_than_the_redelivery_budget_loses_no_alert(
    env: Env, postgres_cluster: PostgresCluster
) -> None:
    devices = [await env.device() for _ in range(3)]
    await env.rule()
    # Two deliveries of 0.5 s each: nak'ing through a 3 s outage would spend them all.
    spec = ConsumerSpec(
        stream="TELEMETRY",
        name=f"test-{secrets.token_hex(6)}",
        owner="alerting",
        filter_subjects=(f"{subjects.PREFIX}.tel.{env.org}.>",),
        ack_wait_seconds=0.5,
        max_deliver=2,
    )
    await messaging.apply_streams(env.js, [streams.stream("TELEMETRY")], [spec])
    stop = asyncio.Event()
    loop = asyncio.create_task(telemetry.run(env.uow, env.nc, spec, 100, stop))
    try:
        await asyncio.to_thread(postgres_cluster.kill)
        for n, device in enumerate(devices):
            body = {"seq": 1, "readings": [{"sensor": "temp", "value": 40 + n, "ts": at(n)}]}
            await env.js.publish(subjects.telemetry(env.org, device), msgspec.json.encode(body))
        await asyncio.sleep(3)
        await asyncio.to_thread(postgres_cluster.restart)
        for _ in range(600):  # up to a minute: a loaded machine restarts Postgres slowly
            info = await env.js.consumer_info(spec.stream, spec.name)
            if info.num_pending == 0 and info.num_ack_pending == 0:
                break
            await asyncio.sleep(0.1)
    finally:
        stop.set()
        await asyncio.wait_for(loop, 20)
    alerts = await env.alerts()
    assert sorted((a.device_id, a.trigger.value) for a in alerts) == sorted(
        (d, 40 + n) for n, d in enumerate(devices)
    )
