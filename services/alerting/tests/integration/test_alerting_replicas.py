"""Evaluation and delivery on separate replicas (``OUTPOST_ALERTING_EVALUATE`` /
``OUTPOST_ALERTING_DELIVER``): real alerting runtimes, as ``outpost-alerting serve`` builds
them, against their own nats-server and the test Postgres.

An evaluation-only replica opens and resolves alerts but sends nothing; a delivery-only
replica sends what the alert events ask for but evaluates nothing; both answer requests.
Together they carry a reading to its signed webhook, as one replica running both does."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path

import msgspec
import nats
import pytest
from alerting_testkit import TEST_KEY, Receiver, alerting_db, ctx, eventually

from outpost_alerting import bootstrap
from outpost_alerting.app import evaluation
from outpost_alerting.settings import AlertingSettings
from outpost_contracts import alerting as api
from outpost_contracts import notifications as notify_api
from outpost_contracts import streams, subjects
from outpost_contracts.devices import DeviceRegistered
from outpost_contracts.envelope import EventEnvelope
from outpost_devkit.infra import NatsServer
from outpost_kit import ids, messaging
from outpost_kit.runtime import ServiceRuntime
from outpost_kit.settings import Secret

pytestmark = pytest.mark.integration

QUIET = 1.5  # seconds in which a replica that should not act would have acted
OPENED, RESOLVED = "alerting.AlertOpened.v1", "alerting.AlertResolved.v1"


@asynccontextmanager
async def replica(
    nats_url: str, dsn: str, *, evaluate: bool, deliver: bool
) -> AsyncIterator[ServiceRuntime]:
    settings = AlertingSettings(
        nats_url=nats_url,
        database_url=Secret(dsn),
        evaluate=evaluate,
        deliver=deliver,
        secret_encryption_key=Secret(TEST_KEY),
        webhook_allow_loopback=True,
        delivery_poll_seconds=0.1,
    )
    runtime = ServiceRuntime(
        "alerting",
        settings,
        {},
        event_types=bootstrap.EVENT_TYPES,
        projectors=bootstrap.PROJECTORS,
    )
    await runtime.connect()
    await bootstrap.build(runtime, settings)
    task = asyncio.create_task(runtime.run())
    await eventually(_async(lambda: runtime.ready))
    try:
        yield runtime
    finally:
        runtime.stop.set()
        await asyncio.wait_for(task, 20)


def _async(probe: Callable[[], bool]) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return probe()

    return check


async def test_evaluation_and_delivery_on_separate_replicas(
    postgres_dsn: str, tmp_path: Path
) -> None:
    broker = NatsServer.start(tmp_path / "nats")
    nc = await nats.connect(broker.url)
    js = nc.jetstream()
    # Every stream and durable consumer, as the stream administrator applies them before
    # the services start (decision 74).
    await messaging.apply_streams(js, streams.STREAMS, streams.CONSUMERS)
    org = ids.new_id()
    device = ids.new_id()
    try:
        with Receiver() as receiver:
            async with alerting_db(postgres_dsn) as (uow, _reads):
                dsn = str(uow.engine.url.render_as_string(hide_password=False))
                async with uow(org) as u:
                    await evaluation.on_device_event(
                        u,
                        EventEnvelope(
                            id=ids.new_id(),
                            org_id=org,
                            stream_id=device,
                            stream_type="device",
                            version=1,
                            occurred_at=ids.now(),
                            data=DeviceRegistered(name="boiler"),
                        ),
                    )
                    await u.commit()

                async def publish(value: float) -> None:
                    body = {
                        "seq": 1,
                        "readings": [{"sensor": "temp", "value": value, "ts": datetime.now(UTC)}],
                    }
                    await js.publish(subjects.telemetry(org, device), msgspec.json.encode(body))

                async def alert() -> api.AlertView | None:
                    page = await messaging.call(nc, api.LIST_ALERTS, ctx(org), api.ListOf())
                    return page.data[0] if page.data else None

                def hooks() -> list[str]:
                    return [r.headers["x-outpost-event-type"] for r in receiver.requests]

                async with replica(broker.url, dsn, evaluate=True, deliver=False):
                    # Requests are served by any replica: the channel and the rule.
                    channel = await messaging.call(
                        nc,
                        notify_api.CREATE_CHANNEL,
                        ctx(org),
                        notify_api.CreateNotificationChannel(
                            type=notify_api.ChannelType.WEBHOOK,
                            name="ops",
                            url=receiver.url(),
                            secret="s" * 32,
                        ),
                    )
                    await messaging.call(
                        nc,
                        api.CREATE_RULE,
                        ctx(org),
                        msgspec.convert(
                            {
                                "name": "hot",
                                "scope": {"type": "ORGANIZATION"},
                                "sensor": "temp",
                                "condition": {"op": ">", "threshold": 30},
                                "severity": "MAJOR",
                                "channelIds": [str(channel.id)],
                            },
                            api.CreateAlertRule,
                        ),
                    )
                    await publish(50)

                    async def opened() -> bool:
                        found = await alert()
                        return found is not None and found.status == api.AlertStatus.OPEN

                    await eventually(opened)
                    # Evaluation only: the alert is open and its event waits for a deliverer.
                    await asyncio.sleep(QUIET)
                    assert hooks() == []
                    info = await js.consumer_info("ALERTING", "alerting-notifications")
                    assert info.num_pending >= 1

                async with replica(broker.url, dsn, evaluate=False, deliver=True):
                    await eventually(_async(lambda: hooks() == [OPENED]))
                    # Delivery only: a reading that clears the condition is not evaluated.
                    await publish(10)
                    await asyncio.sleep(QUIET)
                    found = await alert()
                    assert found is not None and found.status == api.AlertStatus.OPEN
                    assert hooks() == [OPENED]

                    async with replica(broker.url, dsn, evaluate=True, deliver=False):

                        async def resolved() -> bool:
                            found = await alert()
                            return found is not None and found.status == api.AlertStatus.RESOLVED

                        await eventually(resolved)
                        await eventually(_async(lambda: hooks() == [OPENED, RESOLVED]))
                signature = receiver.requests[0].headers["x-outpost-signature"]
                assert signature.startswith("sha256=")
    finally:
        await nc.close()
        broker.stop()
