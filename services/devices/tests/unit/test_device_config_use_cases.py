"""Issue 21's use cases on devices over the fake unit of work (ADR 0091): what a refused
profile leaves behind (nothing), a profile that fleet is not there to resolve, the fleet's
batches (missing, unchanged, too large, delivery), and a report's fact."""

from __future__ import annotations

import uuid

import pytest
from devices_fakes import FakeDelivery, FakeDevices, FakeReads

from outpost_contracts import commands as command_api
from outpost_contracts import device_config as dc
from outpost_contracts import devices as api
from outpost_contracts.envelope import RequestContext
from outpost_contracts.errors import NotFound, ServiceUnavailable, ValidationFailed
from outpost_contracts.fleet import DeviceProfileSpec, ResolvedComponent, ResolvedSensor
from outpost_contracts.presence import STATE_COMMAND
from outpost_contracts.registry import ValueType
from outpost_devices.app import commands, handlers
from outpost_devkit.testing.fakes import api_key_context as _ctx

pytestmark = pytest.mark.unit

PROFILE = DeviceProfileSpec(
    id=uuid.uuid4(),
    version=1,
    name="meter",
    components=[ResolvedComponent(name="board")],
    sensors=[
        ResolvedSensor(
            key="kwh", sensor_profile_id=uuid.uuid4(), value_type=ValueType.NUMBER, unit="kW.h"
        )
    ],
)


async def _resolve(_ctx: RequestContext, profile_id: uuid.UUID) -> DeviceProfileSpec:
    if profile_id != PROFILE.id:
        raise NotFound("no such device profile")
    return PROFILE


@pytest.fixture
def fake() -> FakeDevices:
    return FakeDevices()


@pytest.fixture
def deps(fake: FakeDevices) -> handlers.Deps:
    return handlers.Deps(uow=fake, reads=FakeReads(fake), resolve_profile=_resolve)


async def test_a_profile_is_resolved_before_anything_changes(
    deps: handlers.Deps, fake: FakeDevices
) -> None:
    ctx = _ctx(uuid.uuid4())
    device = await handlers.create_device(deps, ctx, api.CreateDevice(name="m1"))
    events = len(fake.world.streams[device.id])
    with pytest.raises(ValidationFailed):
        await handlers.update_device(
            deps,
            ctx,
            api.UpdateDevice(id=device.id, patch=api.DevicePatch(profile_id=uuid.uuid4())),
        )
    without_fleet = handlers.Deps(uow=fake, reads=FakeReads(fake))
    with pytest.raises(ServiceUnavailable):
        await handlers.update_device(
            without_fleet,
            ctx,
            api.UpdateDevice(id=device.id, patch=api.DevicePatch(profile_id=PROFILE.id)),
        )
    assert len(fake.world.streams[device.id]) == events
    # Clearing needs no fleet.
    cleared = await handlers.update_device(
        without_fleet, ctx, api.UpdateDevice(id=device.id, patch=api.DevicePatch(profile_id=None))
    )
    assert cleared.profile_id is None


async def test_apply_device_profile_gives_and_is_idempotent(
    deps: handlers.Deps, fake: FakeDevices
) -> None:
    ctx = _ctx(uuid.uuid4())
    device = await handlers.create_device(deps, ctx, api.CreateDevice(name="m1"))
    stranger = uuid.uuid4()
    request = dc.ApplyDeviceProfile(profile=PROFILE, device_ids=[device.id, stranger])
    result = await handlers.apply_device_profile(deps, ctx, request)
    assert result.applied == [device.id] and result.missing == [stranger]
    view = await handlers.get_device(deps, ctx, api.GetDevice(id=device.id))
    assert view.profile_id == PROFILE.id
    streams = {k: len(v) for k, v in fake.world.streams.items()}
    assert await handlers.apply_device_profile(deps, ctx, request) == result
    assert {k: len(v) for k, v in fake.world.streams.items()} == streams


async def test_fleet_states_are_set_once_per_digest_and_delivered(
    deps: handlers.Deps, fake: FakeDevices
) -> None:
    ctx = _ctx(uuid.uuid4())
    delivery = FakeDelivery(online=True)
    cmds = commands.CommandDeps(uow=fake, deliver=delivery)
    device = (await handlers.create_device(deps, ctx, api.CreateDevice(name="m1"))).id
    item = dc.FleetDesiredState(device_id=device, document={"rate": 5}, sources={}, digest="a")
    big = dc.FleetDesiredState(
        device_id=device,
        document={"x": "y" * (command_api.MAX_DOCUMENT_BYTES + 1)},
        sources={},
        digest="b",
    )
    stranger = uuid.uuid4()

    first = await commands.set_fleet_desired_states(
        cmds, ctx, dc.SetFleetDesiredStates(items=[item])
    )
    await cmds.drain()
    assert first.changed == [device]
    assert [o[1]["name"] for o in delivery.offers] == [STATE_COMMAND]
    assert delivery.offers[0][1]["params"]["desired"] == {"rate": 5}

    again = await commands.set_fleet_desired_states(
        cmds,
        ctx,
        dc.SetFleetDesiredStates(
            items=[
                item,
                dc.FleetDesiredState(device_id=stranger, document={}, sources={}, digest=""),
            ]
        ),
    )
    await cmds.drain()
    assert again.unchanged == [device] and again.missing == [stranger] and again.changed == []
    assert len(delivery.offers) == 1  # nothing new to deliver
    too = await commands.set_fleet_desired_states(cmds, ctx, dc.SetFleetDesiredStates(items=[big]))
    assert too.too_large == [device]
    state = await commands.get_state(cmds, ctx, command_api.GetDeviceState(device_id=device))
    assert state.desired == {"rate": 5}


async def test_a_report_that_changes_something_is_one_fact(
    deps: handlers.Deps, fake: FakeDevices
) -> None:
    ctx = _ctx(uuid.uuid4())
    cmds = commands.CommandDeps(uow=fake)
    device = (await handlers.create_device(deps, ctx, api.CreateDevice(name="m1"))).id
    await commands.record_report(cmds, ctx.org_id, device, {"led": True})
    await commands.record_report(cmds, ctx.org_id, device, {"led": True})
    await commands.record_report(cmds, ctx.org_id, device, {"led": False})
    facts = [(version, fact.reported) for _d, version, fact in fake.world.facts]
    assert facts == [(1, {"led": True}), (2, {"led": False})]
    assert all(isinstance(f, dc.ReportedStateChanged) for _d, _v, f in fake.world.facts)
