"""Commands and desired state against real Postgres and a real nats-server: delivery with
"no responders" (PENDING) and with a subscriber (SENT), acks, expiry, a ``DeviceConnected``
event that delivers at once, state reports, and acks that are not the device's to give."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import nats
import pytest
from devices_testkit import ctx, devices_deps

from outpost_contracts import commands as api
from outpost_contracts import devices as dev_api
from outpost_contracts import subjects
from outpost_contracts.envelope import EventEnvelope
from outpost_contracts.errors import PreconditionFailed
from outpost_contracts.presence import STATE_COMMAND, AckStatus, DeviceConnected, Protocol
from outpost_devices.adapters.command_delivery import NatsDelivery
from outpost_devices.app import commands, handlers
from outpost_devices.domain import commands as domain
from outpost_devices.entrypoints import commands as entrypoints

pytestmark = pytest.mark.integration

# Offline back-off long enough that only a DeviceConnected event (or a test's explicit
# sweep after moving the wake-up) can deliver within a test.
CONFIG = commands.CommandsConfig(
    backoff_min=timedelta(seconds=60), resend=timedelta(seconds=60), sweep_seconds=0.1
)


class World:
    def __init__(self, deps: handlers.Deps, cmds: commands.CommandDeps, nc: Any) -> None:
        self.deps, self.cmds, self.nc = deps, cmds, nc
        self.ctx = ctx(uuid.uuid4())

    async def device(self) -> uuid.UUID:
        view = await handlers.create_device(
            self.deps, self.ctx, dev_api.CreateDevice(name=f"d-{uuid.uuid4().hex[:8]}")
        )
        return view.id

    async def command(self, device: uuid.UUID, **body: Any) -> api.CommandView:
        view = await commands.create_command(
            self.cmds,
            self.ctx,
            api.CreateCommand(device_id=device, command=api.CommandBody(name="reboot", **body)),
        )
        await self.cmds.drain()
        return view

    async def get(self, device: uuid.UUID, command: uuid.UUID) -> api.CommandView:
        return await commands.get_command(
            self.cmds, self.ctx, api.GetCommand(device_id=device, id=command)
        )

    async def make_due(self, device: uuid.UUID) -> None:
        async with self.cmds.uow(None) as uow:
            await uow.execute(
                "UPDATE command_wakeups SET due_at = now() - interval '1 second'"
                " WHERE device_id = :d",
                {"d": device},
            )
            await uow.commit()


async def _eventually(probe: Callable[[], Awaitable[bool]], seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if await probe():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not reached in time")


@pytest.fixture
async def world(postgres_dsn: str, nats_url: str) -> AsyncIterator[World]:
    async with devices_deps(postgres_dsn, pool_size=6) as deps:
        nc = await nats.connect(nats_url)
        cmds = commands.CommandDeps(uow=deps.uow, config=CONFIG, deliver=NatsDelivery(nc, 0.25))
        stop = asyncio.Event()
        service = asyncio.create_task(entrypoints.run(nc, cmds, stop))
        try:
            yield World(deps, cmds, nc)
        finally:
            stop.set()
            await service
            await nc.close()


class Inbox:
    """A device's subscription to its command subject."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []

    async def cb(self, msg: Any) -> None:
        self.messages.append(json.loads(msg.data))

    async def received(self) -> bool:
        """Whether a message arrived (its callback runs when the loop gets to it: a test
        waits for it rather than assuming it ran during the delivery's time-out)."""
        return bool(self.messages)


async def _subscribe(world: World, device: uuid.UUID) -> Inbox:
    inbox = Inbox()
    await world.nc.subscribe(subjects.command(world.ctx.org_id, device), cb=inbox.cb)
    await world.nc.flush()
    return inbox


async def _ack(world: World, device: uuid.UUID, body: dict[str, Any]) -> None:
    await world.nc.publish(
        subjects.command_ack(world.ctx.org_id, device), json.dumps(body).encode()
    )
    await world.nc.flush()


async def test_offline_stays_pending_then_the_sweep_sends_and_acks_finish_it(
    world: World,
) -> None:
    device = await world.device()
    created = await world.command(device, params={"delay": 1})
    assert created.status == "PENDING"
    assert (await world.get(device, created.id)).status == "PENDING"  # no responders

    inbox = await _subscribe(world, device)
    await world.make_due(device)

    async def sent() -> bool:
        return (await world.get(device, created.id)).status == "SENT"

    await _eventually(sent)
    await _eventually(inbox.received)
    assert inbox.messages[0]["id"] == str(created.id)
    assert inbox.messages[0]["name"] == "reboot" and inbox.messages[0]["params"] == {"delay": 1}

    await _ack(world, device, {"id": str(created.id), "status": "ACKNOWLEDGED"})
    await _ack(world, device, {"id": str(created.id), "status": "SUCCEEDED", "result": {"ok": 1}})

    async def succeeded() -> bool:
        return (await world.get(device, created.id)).status == "SUCCEEDED"

    await _eventually(succeeded)
    view = await world.get(device, created.id)
    assert view.result == {"ok": 1}
    assert view.sent_at and view.acknowledged_at and view.completed_at
    # A late FAILED changes nothing.
    await _ack(world, device, {"id": str(created.id), "status": "FAILED"})
    await asyncio.sleep(0.3)
    assert (await world.get(device, created.id)).status == "SUCCEEDED"


async def test_a_subscribed_device_gets_the_command_at_once(world: World) -> None:
    device = await world.device()
    inbox = await _subscribe(world, device)
    created = await world.command(device)
    assert (await world.get(device, created.id)).status == "SENT"
    await _eventually(inbox.received)
    assert [m["id"] for m in inbox.messages] == [str(created.id)]


async def test_an_unacknowledged_command_expires(world: World) -> None:
    device = await world.device()
    created = await world.command(device, ttl_seconds=1)
    await asyncio.sleep(1.1)  # the wake-up is due by the expiry at the latest

    async def expired() -> bool:
        return (await world.get(device, created.id)).status == "EXPIRED"

    await _eventually(expired)
    await _ack(world, device, {"id": str(created.id), "status": "SUCCEEDED"})
    await asyncio.sleep(0.3)
    assert (await world.get(device, created.id)).status == "EXPIRED"


async def test_device_connected_delivers_what_waits(world: World) -> None:
    device = await world.device()
    created = await world.command(device)
    await commands.change_desired(
        world.cmds, world.ctx, api.ChangeDesiredState(device_id=device, desired={"led": True})
    )
    await world.cmds.drain()
    assert (await world.get(device, created.id)).status == "PENDING"

    inbox = await _subscribe(world, device)
    envelope = EventEnvelope(
        id=uuid.uuid4(),
        org_id=world.ctx.org_id,
        stream_id=device,
        stream_type="device",
        version=9,
        occurred_at=datetime.now(UTC),
        data=DeviceConnected(
            connected_at=datetime.now(UTC), protocol=Protocol.NATS, connection="s/1"
        ),
    )
    tag = "devices.DeviceConnected.v1"
    await world.nc.publish(subjects.event(tag, world.ctx.org_id), msgspec.json.encode(envelope))

    async def sent() -> bool:
        return (await world.get(device, created.id)).status == "SENT"

    await _eventually(sent, seconds=20)  # the back-off alone would wait a minute
    await _eventually(lambda: _has(inbox, STATE_COMMAND))
    state = next(m for m in inbox.messages if m["name"] == STATE_COMMAND)
    assert state["params"] == {"version": 1, "desired": {"led": True}, "delta": {"led": True}}


async def _has(inbox: Inbox, name: str) -> bool:
    return any(m["name"] == name for m in inbox.messages)


async def test_state_round_trip_and_foreign_acks(world: World) -> None:
    device, other = await world.device(), await world.device()
    inbox = await _subscribe(world, device)
    view = await commands.change_desired(
        world.cmds,
        world.ctx,
        api.ChangeDesiredState(device_id=device, desired={"led": True, "fan": 2}),
    )
    assert view.version == 1 and view.delta == {"led": True, "fan": 2}
    await _eventually(lambda: _has(inbox, STATE_COMMAND))
    message = inbox.messages[-1]
    assert message["params"]["version"] == 1

    await _ack(world, device, {"state": {"reported": {"led": True, "fan": 2, "uptime": 5}}})

    async def in_sync() -> bool:
        state = await commands.get_state(
            world.cmds, world.ctx, api.GetDeviceState(device_id=device)
        )
        return state.reported.get("uptime") == 5 and state.delta == {}

    await _eventually(in_sync)

    # If-Match on a stale version: 412, nothing changes.
    with pytest.raises(PreconditionFailed):
        await commands.change_desired(
            world.cmds,
            world.ctx,
            api.ChangeDesiredState(device_id=device, desired={"led": False}, expected_version=0),
        )

    # Another device acking this device's command is ignored.
    created = await world.command(device)
    await _ack(world, other, {"id": str(created.id), "status": "SUCCEEDED"})
    await asyncio.sleep(0.3)
    assert (await world.get(device, created.id)).status == "SENT"


async def test_racing_acks_decide_one_final_status(world: World) -> None:
    """Acks handled at once (as by several replicas): one final status, each event once."""
    device = await world.device()
    created = await world.command(device)
    acks = [AckStatus.SUCCEEDED, AckStatus.FAILED, AckStatus.ACKNOWLEDGED] * 4
    await asyncio.gather(
        *(
            commands.transition(
                world.cmds, world.ctx.org_id, created.id, domain.Ack(status=s), device_id=device
            )
            for s in acks
        )
    )
    async with world.cmds.uow(world.ctx.org_id) as uow:
        types = [
            r.event_type
            for r in await uow.execute(
                "SELECT event_type FROM events WHERE stream_id = :id ORDER BY version",
                {"id": created.id},
            )
        ]
    finals = [t for t in types if t.endswith(("CommandSucceeded.v1", "CommandFailed.v1"))]
    assert len(finals) == 1, types
    assert types.count("devices.CommandSent.v1") == 1, types
    assert types.count("devices.CommandAcknowledged.v1") <= 1, types
    view = await world.get(device, created.id)
    assert view.status in ("SUCCEEDED", "FAILED") and view.completed_at is not None
