"""Issue 21 on the devices side against real Postgres and a real nats-server (ADR 0091): a
PATCH that sets ``profileId`` resolves the profile from a small fleet responder served over
NATS by the test (the kit's ``Responder``), and gives the device what the profile lists in
the same transaction; fleet's ``ApplyDeviceProfile`` and ``SetFleetDesiredStates`` called
over NATS as fleet calls them, their batches of 500 timed in the log; the fleet layer
delivered to a subscribed device as ``outpost.state``; ``?explain=true``; and the fact of a
report (``ReportedStateChanged``) in the outbox and not in the audit log."""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from typing import Any

import msgspec
import pytest
from devices_testkit import ctx, devices_deps

from outpost_contracts import commands as api
from outpost_contracts import device_config as dc
from outpost_contracts import devices as dev_api
from outpost_contracts import fleet, subjects
from outpost_contracts import registry as reg_api
from outpost_contracts.envelope import RequestContext
from outpost_contracts.errors import NotFound, ValidationFailed
from outpost_contracts.presence import STATE_COMMAND
from outpost_contracts.query import Cmp, ListQuery
from outpost_contracts.registry import ValidRange, ValueType
from outpost_devices.adapters.command_delivery import NatsDelivery
from outpost_devices.app import commands, handlers, registry
from outpost_devices.entrypoints import commands as command_entrypoints
from outpost_devices.entrypoints import rpc
from outpost_kit import messaging
from outpost_kit.responder import Responder

pytestmark = pytest.mark.integration
_log = logging.getLogger(__name__)

CONFIG = commands.CommandsConfig(
    backoff_min=timedelta(seconds=60), resend=timedelta(seconds=60), sweep_seconds=0.1
)
KIND = uuid.uuid4()


def _profile(name: str = "thermostat") -> fleet.DeviceProfileSpec:
    return fleet.DeviceProfileSpec(
        id=uuid.uuid4(),
        version=1,
        name=name,
        components=[fleet.ResolvedComponent(name="board", kind="pcb")],
        sensors=[
            fleet.ResolvedSensor(
                key="temp",
                sensor_profile_id=KIND,
                value_type=ValueType.NUMBER,
                unit="Cel",
                valid_range=ValidRange(min=-40, max=85),
            ),
            fleet.ResolvedSensor(
                key="hum", sensor_profile_id=KIND, value_type=ValueType.NUMBER, unit="%"
            ),
        ],
    )


class FleetStandIn:
    """The fleet's ``ResolveDeviceProfile``, served over NATS: the profiles it knows."""

    def __init__(self) -> None:
        self.profiles: dict[uuid.UUID, fleet.DeviceProfileSpec] = {}
        self.calls = 0

    async def resolve(
        self, _ctx: RequestContext, q: fleet.ResolveDeviceProfile
    ) -> fleet.DeviceProfileSpec:
        self.calls += 1
        found = self.profiles.get(q.id)
        if found is None:
            raise NotFound("no such device profile")
        return found


class World:
    def __init__(
        self, deps: handlers.Deps, cmds: commands.CommandDeps, nc: Any, stand_in: FleetStandIn
    ) -> None:
        self.deps, self.cmds, self.nc, self.fleet = deps, cmds, nc, stand_in
        self.ctx = ctx(uuid.uuid4())

    async def device(self, **fields: Any) -> uuid.UUID:
        create = dev_api.CreateDevice(name=f"d-{uuid.uuid4().hex[:10]}", **fields)
        return (await handlers.create_device(self.deps, self.ctx, create)).id

    def known(self, profile: fleet.DeviceProfileSpec) -> fleet.DeviceProfileSpec:
        self.fleet.profiles[profile.id] = profile
        return profile

    async def patch(self, device: uuid.UUID, **fields: Any) -> dev_api.DeviceView:
        cmd = dev_api.UpdateDevice(id=device, patch=dev_api.DevicePatch(**fields))
        return await handlers.update_device(self.deps, self.ctx, cmd)

    async def sensors(self, device: uuid.UUID) -> dict[str, reg_api.SensorView]:
        query = ListQuery(filter=Cmp(field="deviceId", op="eq", value=str(device)), limit=100)
        page = await registry.list_sensors(self.deps, self.ctx, reg_api.ListRegistry(query=query))
        return {s.key: s for s in page.data}

    async def components(self, device: uuid.UUID) -> list[str]:
        query = ListQuery(filter=Cmp(field="deviceId", op="eq", value=str(device)), limit=100)
        page = await registry.list_components(
            self.deps, self.ctx, reg_api.ListRegistry(query=query)
        )
        return sorted(c.name for c in page.data)

    async def scalar(self, sql: str, **params: Any) -> Any:
        async with self.deps.uow(self.ctx.org_id) as tx:
            return (await tx.execute(sql, params)).scalar_one()

    async def event_count(self) -> int:
        return int(await self.scalar("SELECT count(*) FROM events"))

    async def call(self, op: Any, body: Any) -> Any:
        return await messaging.call(self.nc, op, self.ctx, body, timeout=60)

    async def state(self, device: uuid.UUID, explain: bool = False) -> api.DeviceStateView:
        q = api.GetDeviceState(device_id=device, explain=explain)
        return await commands.get_state(self.cmds, self.ctx, q)


@pytest.fixture
async def world(postgres_dsn: str, nats_url: str) -> AsyncIterator[World]:
    async with devices_deps(postgres_dsn, pool_size=6) as base:
        nc = await messaging.connect(nats_url, "devices-config-tests")
        stand_in = FleetStandIn()

        async def resolve(c: RequestContext, profile_id: uuid.UUID) -> fleet.DeviceProfileSpec:
            request = fleet.ResolveDeviceProfile(id=profile_id)
            return await messaging.call(nc, fleet.RESOLVE_DEVICE_PROFILE, c, request)

        deps = handlers.Deps(uow=base.uow, reads=base.reads, resolve_profile=resolve)
        cmds = commands.CommandDeps(uow=deps.uow, config=CONFIG, deliver=NatsDelivery(nc, 0.25))
        table = rpc.handlers(deps, cmds)
        served = {op: table[op] for op in (dc.APPLY_DEVICE_PROFILE, dc.SET_FLEET_DESIRED_STATES)}
        responders = [
            Responder(nc, "fleet", {fleet.RESOLVE_DEVICE_PROFILE: stand_in.resolve}),
            Responder(nc, "devices", served),
        ]
        for responder in responders:
            await responder.start()
        stop = asyncio.Event()
        service = asyncio.create_task(command_entrypoints.run(nc, cmds, stop))
        try:
            yield World(deps, cmds, nc, stand_in)
        finally:
            stop.set()
            await service
            await cmds.drain()
            for responder in responders:
                await responder.stop()
            await nc.close()


async def _eventually(probe: Callable[[], Awaitable[bool]], seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if await probe():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not reached in time")


# --- profileId --------------------------------------------------------------------------


async def test_patching_profile_id_gives_the_device_what_the_profile_lists(world: World) -> None:
    profile = world.known(_profile())
    device = await world.device()
    await registry.declare_sensor(
        world.deps,
        world.ctx,
        reg_api.DeclareSensor(device_id=device, key="temp", unit="K"),
    )
    await registry.declare_sensor(
        world.deps,
        world.ctx,
        reg_api.DeclareSensor(device_id=device, key="mine", value_type=ValueType.STRING),
    )

    view = await world.patch(device, profile_id=profile.id)

    assert view.profile_id == profile.id
    assert world.fleet.calls == 1  # resolved over NATS by the stand-in
    assert await world.components(device) == ["board"]
    sensors = await world.sensors(device)
    assert set(sensors) == {"temp", "hum", "mine"}  # its own sensor stays
    assert sensors["temp"].unit == "Cel"  # aligned with the profile
    assert sensors["temp"].valid_range == ValidRange(min=-40, max=85)
    changed = await world.scalar(
        "SELECT data->'changed' FROM events WHERE stream_id = :d"
        " AND event_type = 'devices.DeviceUpdated.v1' ORDER BY version DESC LIMIT 1",
        d=device,
    )
    assert changed == ["profileId"]

    # The collection filters by it.
    page = await handlers.list_devices(
        world.deps,
        world.ctx,
        dev_api.ListDevices(
            query=ListQuery(filter=Cmp(field="profileId", op="eq", value=str(profile.id)))
        ),
    )
    assert [d.id for d in page.data] == [device]

    # Setting it again plans nothing; clearing it keeps what the device has.
    before = await world.event_count()
    await world.patch(device, profile_id=profile.id)
    assert await world.event_count() == before
    cleared = await world.patch(device, profile_id=None)
    assert cleared.profile_id is None
    assert set(await world.sensors(device)) == {"temp", "hum", "mine"}
    assert await world.components(device) == ["board"]


async def test_a_profile_fleet_does_not_know_is_a_validation_error_and_changes_nothing(
    world: World,
) -> None:
    device = await world.device()
    before = await world.event_count()
    with pytest.raises(ValidationFailed) as caught:
        await world.patch(device, profile_id=uuid.uuid4(), name="renamed")
    assert [f.name for f in caught.value.fields] == ["profileId"]
    assert await world.event_count() == before


async def test_create_and_bulk_patch_with_a_profile(world: World) -> None:
    profile = world.known(_profile())
    created = await world.device(profile_id=profile.id)
    assert set(await world.sensors(created)) == {"temp", "hum"}
    others = [await world.device(device_type="bulk-x") for _ in range(2)]
    result = await handlers.bulk_update_devices(
        world.deps,
        world.ctx,
        dev_api.BulkUpdateDevices(
            filter=Cmp(field="deviceType", op="eq", value="bulk-x"),
            expected_count=2,
            patch=dev_api.DevicePatch(profile_id=profile.id),
        ),
    )
    assert result == dev_api.BulkResult(matched=2, changed=2)
    for device in others:
        assert await world.components(device) == ["board"]
        assert set(await world.sensors(device)) == {"temp", "hum"}


# --- ApplyDeviceProfile -----------------------------------------------------------------


async def test_apply_device_profile_over_nats_is_idempotent_and_reports_missing(
    world: World,
) -> None:
    profile = _profile()
    devices = [await world.device() for _ in range(3)]
    gone = await world.device()
    await handlers.decommission_device(world.deps, world.ctx, dev_api.DecommissionDevice(id=gone))
    stranger = uuid.uuid4()
    request = dc.ApplyDeviceProfile(profile=profile, device_ids=[*devices, gone, stranger])

    result = await world.call(dc.APPLY_DEVICE_PROFILE, request)

    assert result.applied == devices and result.missing == [gone, stranger]
    for device in devices:
        view = await handlers.get_device(world.deps, world.ctx, dev_api.GetDevice(id=device))
        assert view.profile_id == profile.id
        assert set(await world.sensors(device)) == {"temp", "hum"}
    before = await world.event_count()
    again = await world.call(dc.APPLY_DEVICE_PROFILE, request)
    assert again == result
    assert await world.event_count() == before  # nothing changed


# --- SetFleetDesiredStates --------------------------------------------------------------


def _source() -> dc.Source:
    return dc.Source(
        binding_id=uuid.uuid4(),
        artefact_id=uuid.uuid4(),
        artefact_version=3,
        target_type=fleet.TargetType.GROUP,
    )


async def test_the_fleet_layer_reaches_the_device_and_local_keys_win(world: World) -> None:
    device = await world.device()
    received: list[dict[str, Any]] = []

    async def on_command(msg: Any) -> None:
        received.append(json.loads(msg.data))

    await world.nc.subscribe(subjects.command(world.ctx.org_id, device), cb=on_command)
    await world.nc.flush()
    await commands.change_desired(
        world.cmds,
        world.ctx,
        api.ChangeDesiredState(device_id=device, desired={"led": False}),
    )
    source = _source()
    item = dc.FleetDesiredState(
        device_id=device,
        document={"led": True, "sampling": {"interval": 10}},
        sources={"/led": source, "/sampling/interval": source},
        digest="sha256:one",
    )
    stranger = uuid.uuid4()

    result = await world.call(dc.SET_FLEET_DESIRED_STATES, dc.SetFleetDesiredStates(items=[item]))
    assert result.changed == [device] and result.unchanged == [] and result.too_large == []

    async def delivered() -> bool:
        return any(
            m["name"] == STATE_COMMAND
            and m["params"]["desired"] == {"led": False, "sampling": {"interval": 10}}
            for m in received
        )

    await _eventually(delivered)
    view = await world.state(device, explain=True)
    assert view.desired == {"led": False, "sampling": {"interval": 10}}
    assert view.explain is not None
    assert view.explain["/led"] == api.KeySource(source="device")
    assert view.explain["/sampling/interval"].binding_id == source.binding_id
    assert view.explain["/sampling/interval"].artefact_version == 3
    assert (await world.state(device)).explain is None  # only when asked

    # The same digest again: unchanged, no event, no delivery.
    before = await world.event_count()
    again = await world.call(
        dc.SET_FLEET_DESIRED_STATES,
        dc.SetFleetDesiredStates(items=[item, msgspec.structs.replace(item, device_id=stranger)]),
    )
    assert again.changed == [] and again.unchanged == [device] and again.missing == [stranger]
    assert await world.event_count() == before

    # Too large for a device: reported, nothing changed.
    big = msgspec.structs.replace(
        item, document={"blob": "x" * (api.MAX_DOCUMENT_BYTES + 1)}, digest="sha256:big"
    )
    too = await world.call(dc.SET_FLEET_DESIRED_STATES, dc.SetFleetDesiredStates(items=[big]))
    assert too.too_large == [device] and too.changed == []
    assert (await world.state(device)).desired == view.desired


async def test_a_report_is_a_fact_in_the_outbox_and_not_in_the_audit_log(world: World) -> None:
    device = await world.device()
    report = {"state": {"reported": {"led": True}}}
    for _ in range(2):  # the same report twice: one fact
        await world.nc.publish(
            subjects.command_ack(world.ctx.org_id, device), json.dumps(report).encode()
        )
    await world.nc.flush()

    async def reported() -> bool:
        return (await world.state(device)).reported == {"led": True}

    await _eventually(reported)
    facts_sql = (
        "SELECT count(*) FROM outbox WHERE subject = :s"
        " AND convert_from(payload, 'UTF8')::jsonb->>'streamId' = :d"
    )
    subject = subjects.event(dc.ReportedStateChanged.__struct_config__.tag, world.ctx.org_id)

    async def one_fact() -> bool:
        async with world.deps.uow(None) as tx:
            found = (await tx.execute(facts_sql, {"s": subject, "d": str(device)})).scalar_one()
        return int(found) == 1

    await _eventually(one_fact)
    audited = await world.scalar(
        "SELECT count(*) FROM events WHERE event_type LIKE '%ReportedStateChanged%'"
    )
    assert audited == 0


# --- a batch of 500, timed in the log ---------------------------------------------------


async def test_batches_of_500_are_one_call_each(world: World, caplog: Any) -> None:
    caplog.set_level(logging.INFO)
    devices = [await world.device() for _ in range(dc.MAX_BATCH)]
    profile = _profile()

    started = time.perf_counter()
    applied = await world.call(
        dc.APPLY_DEVICE_PROFILE, dc.ApplyDeviceProfile(profile=profile, device_ids=devices)
    )
    apply_seconds = time.perf_counter() - started
    assert len(applied.applied) == dc.MAX_BATCH

    source = _source()
    items = [
        dc.FleetDesiredState(
            device_id=d,
            document={"sampling": {"interval": 30}},
            sources={"/sampling/interval": source},
            digest="sha256:batch",
        )
        for d in devices
    ]
    started = time.perf_counter()
    result = await world.call(dc.SET_FLEET_DESIRED_STATES, dc.SetFleetDesiredStates(items=items))
    set_seconds = time.perf_counter() - started
    assert len(result.changed) == dc.MAX_BATCH
    started = time.perf_counter()
    again = await world.call(dc.SET_FLEET_DESIRED_STATES, dc.SetFleetDesiredStates(items=items))
    unchanged_seconds = time.perf_counter() - started
    assert len(again.unchanged) == dc.MAX_BATCH
    _log.info(
        "500-device batches: ApplyDeviceProfile %.2f s (1 component, 2 sensors each),"
        " SetFleetDesiredStates %.2f s changed, %.2f s unchanged",
        apply_seconds,
        set_seconds,
        unchanged_seconds,
    )
    print(
        f"500-device batches: ApplyDeviceProfile {apply_seconds:.2f} s,"
        f" SetFleetDesiredStates {set_seconds:.2f} s changed, {unchanged_seconds:.2f} s unchanged"
    )
