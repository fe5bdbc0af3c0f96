"""Presence against a real nats-server (with a system account) and real Postgres: advisories
while the service listens, reconciliation of what it missed while it did not (a restart),
a restarted nats-server's connections ending, and concurrent handlers under the row lock."""

from __future__ import annotations

import asyncio
import itertools
import json
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import nats
import pytest
from devices_testkit import ctx, devices_deps

from outpost_contracts import devices as dev_api
from outpost_contracts import subjects
from outpost_contracts.base import event_tag
from outpost_contracts.identity import OrganizationReinstated, OrganizationSuspended
from outpost_contracts.presence import GetDeviceHealth
from outpost_devices.adapters import broker_events
from outpost_devices.adapters.callout import SUSPENSION_MEMORY_SECONDS, Sessions
from outpost_devices.app import handlers, presence
from outpost_devices.domain.presence import Connected, Connection, Disconnected
from outpost_devices.entrypoints.presence import BrokerPresence, PresenceConfig
from outpost_devkit.infra.nats import NatsServer
from outpost_kit import ids

pytestmark = pytest.mark.integration


@pytest.fixture
async def deps(postgres_dsn: str) -> AsyncIterator[handlers.Deps]:
    async with devices_deps(postgres_dsn) as found:
        yield found


async def _device(deps: handlers.Deps, org: uuid.UUID) -> uuid.UUID:
    view = await handlers.create_device(
        deps, ctx(org), dev_api.CreateDevice(name=f"d-{uuid.uuid4().hex[:8]}")
    )
    return view.id


async def _view(deps: handlers.Deps, org: uuid.UUID, device: uuid.UUID) -> dev_api.DeviceView:
    return await handlers.get_device(deps, ctx(org), dev_api.GetDevice(id=device))


async def _presence_outbox(deps: handlers.Deps, device: uuid.UUID) -> list[str]:
    async with deps.uow(None) as uow:
        rows = await uow.execute("SELECT subject, payload FROM outbox ORDER BY position")
        found = []
        for row in rows:
            body = json.loads(bytes(row.payload))
            if body["streamId"] == str(device) and body["streamType"] == "presence":
                found.append(body["data"]["type"].split(".")[1])
        return found


async def _until(probe: Callable[[], Any], ok: Callable[[Any], bool], seconds: float = 30) -> Any:
    deadline = asyncio.get_running_loop().time() + seconds
    while True:
        got = await probe()
        if ok(got) or asyncio.get_running_loop().time() > deadline:
            return got
        await asyncio.sleep(0.05)


@pytest.fixture
def broker_for(tmp_path: Path) -> Any:
    """A nats-server with a system account whose users are the devices given (user name as
    the auth callout would name them), started on demand."""
    servers: list[NatsServer] = []

    def start(users: list[str]) -> NatsServer:
        listed = ", ".join(f'{{user: "{u}", password: "pw"}}' for u in users)
        server = NatsServer.start(
            tmp_path / "nats",
            extra_config=(
                'accounts { SYS: { users: [ {user: "sys", password: "sys"} ] } }\n'
                "system_account: SYS\n"
                f"authorization {{ users: [ {listed} ] }}\n"
            ),
        )
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


async def _connect(server: NatsServer, user: str, **options: Any) -> Any:
    # The user name has colons, so it goes beside the URL, not in it.
    password = "sys" if user == "sys" else "pw"
    return await nats.connect(
        f"nats://127.0.0.1:{server.port}",
        user=user,
        password=password,
        max_reconnect_attempts=0,
        **options,
    )


async def test_presence_follows_the_broker_and_repairs_what_it_missed(
    deps: handlers.Deps, broker_for: Any
) -> None:
    org = uuid.uuid4()
    device = await _device(deps, org)
    user = broker_events.device_user(org, device)
    server = broker_for([user])

    # The device connects while no devices service listens (it is down).
    first = await _connect(server, user)
    assert not (await _view(deps, org, device)).online

    system = await _connect(server, "sys")
    service = BrokerPresence(system, deps.uow, PresenceConfig(reconcile_seconds=3600))
    stop = asyncio.Event()
    running = asyncio.create_task(service.run(stop))  # reconciles once at start
    try:
        view = await _until(lambda: _view(deps, org, device), lambda v: v.online)
        assert view.online and view.last_connected_at is not None
        assert await _presence_outbox(deps, device) == ["DeviceConnected"]

        # While it listens: a disconnect arrives as an advisory.
        await first.close()
        view = await _until(lambda: _view(deps, org, device), lambda v: not v.online)
        assert not view.online and view.last_disconnected_at is not None
        # And a connect again.
        second = await _connect(server, user)
        view = await _until(lambda: _view(deps, org, device), lambda v: v.online)
        assert view.online
    finally:
        stop.set()
        await running

    # The service is down again; the device leaves; nobody hears it.
    await second.close()
    system = await _connect(server, "sys")
    # The broker has let it go (its listing says so), not "probably, after 0.3 s": else the
    # reconciliation below could still see it connected.
    gone = await _until(
        lambda: broker_events.connz(system), lambda snap: (org, device) not in snap.devices, 60
    )
    assert (org, device) not in gone.devices
    assert (await _view(deps, org, device)).online
    # A new replica starts: its first reconciliation sets it right.
    restarted = BrokerPresence(system, deps.uow, PresenceConfig(reconcile_seconds=3600))
    assert await restarted.reconcile_once() == 1
    view = await _view(deps, org, device)
    assert not view.online and view.last_disconnected_at is not None
    assert await restarted.reconcile_once() == 0  # nothing left to repair
    await system.close()
    assert await _presence_outbox(deps, device) == [
        "DeviceConnected",
        "DeviceDisconnected",
        "DeviceConnected",
        "DeviceDisconnected",
    ]


async def test_a_restarted_broker_ends_the_connections_it_forgot(
    deps: handlers.Deps, broker_for: Any
) -> None:
    """nats-server restarts (a new server id) while the device is offline: the old server
    never answers again, and after two silent rounds its connections end."""
    org = uuid.uuid4()
    device = await _device(deps, org)
    user = broker_events.device_user(org, device)
    server = broker_for([user])
    conn = await _connect(server, user, allow_reconnect=False)
    system = await _connect(server, "sys")
    service = BrokerPresence(system, deps.uow, PresenceConfig())
    await service.reconcile_once()
    assert (await _view(deps, org, device)).online
    await system.close()

    server.restart()  # the device's connection is gone with it, and no advisory told us
    await conn.close()
    system = await _connect(server, "sys")
    service = BrokerPresence(system, deps.uow, PresenceConfig())
    assert await service.reconcile_once() == 0  # silent once: perhaps only slow
    assert (await _view(deps, org, device)).online
    assert await service.reconcile_once() == 1  # silent twice: gone
    assert not (await _view(deps, org, device)).online
    await system.close()


async def test_concurrent_handlers_never_leave_a_device_offline_while_connected(
    deps: handlers.Deps,
) -> None:
    """Several replicas apply a device's advisories at once, in any order: the row lock
    serialises them and the fold makes the order irrelevant."""
    org = uuid.uuid4()
    device = await _device(deps, org)
    t0 = ids.now()
    for round_ in range(10):
        base = t0 + timedelta(seconds=round_ * 10)
        old = Connection(key=f"S/{round_ * 2}", server_id="S", since=base)
        new = Connection(key=f"S/{round_ * 2 + 1}", server_id="S", since=base)
        facts: list[Any] = [
            Connected(connection=old),
            Connected(connection=new),
            Disconnected(key=old.key, at=base + timedelta(seconds=1)),
        ]
        if round_:
            facts.append(Disconnected(key=f"S/{round_ * 2 - 1}", at=base))  # last round's
        await asyncio.gather(*(presence.apply(deps.uow, org, device, f) for f in facts))
        view = await _view(deps, org, device)
        assert view.online, f"offline while connected in round {round_}"
        health = await presence.get_device_health(deps, ctx(org), GetDeviceHealth(id=device))
        assert health.connections == 1
    # Between rounds the device may really have had no connection for a moment (the last
    # round's closed before this round's opened): then it went offline and back, in order.
    events = await _presence_outbox(deps, device)
    assert events[0] == "DeviceConnected" and events[-1] == "DeviceConnected"
    assert all(a != b for a, b in itertools.pairwise(events)), events


async def test_a_replica_that_never_admitted_a_connection_kicks_it_from_presence(
    deps: handlers.Deps, broker_for: Any
) -> None:
    """Decommissioning closes a device's connections even when the replica that admitted
    them is gone: every replica kicks the connections presence recorded (decision 54's
    amendment), which is what lets broker sessions last an hour."""
    org = uuid.uuid4()
    device = await _device(deps, org)
    user = broker_events.device_user(org, device)
    server = broker_for([user])
    closed = asyncio.Event()

    async def on_closed() -> None:
        closed.set()

    conn = await _connect(server, user, allow_reconnect=False, closed_cb=on_closed)
    system = await _connect(server, "sys")
    await BrokerPresence(system, deps.uow, PresenceConfig()).reconcile_once()
    assert (await _view(deps, org, device)).online

    kicker = await _connect(server, "sys")
    fresh = Sessions(system, kicker, deps.uow)  # admitted nothing itself
    assert await fresh.kick(uuid.uuid4(), org) == 0  # a device with no connections
    assert await fresh.kick(device, org) == 1
    await asyncio.wait_for(closed.wait(), 5)
    assert conn.is_closed
    await kicker.close()
    await system.close()


async def test_a_suspension_kicks_every_device_of_the_organization_and_no_other(
    deps: handlers.Deps, broker_for: Any
) -> None:
    """docs/design/reliability.md ``suspension`` (decision 76): ``OrganizationSuspended``, heard on
    the subject identity publishes it on, closes every connection of the organization's devices
    (those presence recorded, whichever replica admitted them) and none of another's; the
    replica refuses the organization on that word alone until the table has it, and no
    longer once ``OrganizationReinstated`` is heard."""
    org, other = uuid.uuid4(), uuid.uuid4()
    devices = [(org, await _device(deps, org)) for _ in range(2)]
    devices.append((other, await _device(deps, other)))
    users = [broker_events.device_user(o, d) for o, d in devices]
    server = broker_for(users)
    conns = [await _connect(server, u, allow_reconnect=False) for u in users]
    system = await _connect(server, "sys")
    await BrokerPresence(system, deps.uow, PresenceConfig()).reconcile_once()
    assert all([(await _view(deps, o, d)).online for o, d in devices])

    now = [0.0]
    kicker = await _connect(server, "sys")
    sessions = Sessions(system, kicker, deps.uow, clock=lambda: now[0])
    stop = asyncio.Event()
    running = asyncio.create_task(sessions.run(stop))
    await _until(lambda: system.flush(), lambda _: True)  # its subscriptions are in place

    def envelope(name: str, version: int) -> bytes:
        return json.dumps({"orgId": str(org), "streamId": str(org), "version": version}).encode()

    await system.publish(
        subjects.event(event_tag(OrganizationSuspended), org), envelope("suspended", 2)
    )
    closed = await _until(
        lambda: asyncio.sleep(0, [c.is_closed for c in conns]), lambda got: got[:2] == [True] * 2
    )
    assert closed == [True, True, False]  # the other organization's device stays
    assert sessions.refuses(org) and not sessions.refuses(other)
    now[0] += SUSPENSION_MEMORY_SECONDS + 1  # the table decides from then on
    assert not sessions.refuses(org)

    await sessions.organization_changed(org, suspended=True)  # heard again: remembered again
    assert sessions.refuses(org)
    await system.publish(
        subjects.event(event_tag(OrganizationReinstated), org), envelope("reinstated", 3)
    )
    assert not await _until(
        lambda: asyncio.sleep(0, sessions.refuses(org)), lambda refused: not refused
    )
    stop.set()
    await asyncio.wait_for(running, 5)
    await conns[2].close()
    await system.close()
