"""Devices' use cases over the fake unit of work (``devices_fakes.py``), no Postgres: what each
checks before it decides, what a refusal leaves behind (nothing: the transaction rolls back),
and the command delivery's bookkeeping (expiry, back-off, SENT, the desired state)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from devices_fakes import FakeDelivery, FakeDevices, FakeReads, command_statuses

from outpost_contracts import commands as command_api
from outpost_contracts import devices as api
from outpost_contracts import registry as registry_api
from outpost_contracts.envelope import RequestContext
from outpost_contracts.errors import Conflict, NotFound, PreconditionFailed, ValidationFailed
from outpost_contracts.presence import STATE_COMMAND, CommandStatus
from outpost_contracts.query import ListQuery
from outpost_devices.app import commands, handlers, registry
from outpost_devices.domain import devices as device_domain
from outpost_devkit.testing.fakes import api_key_context as _ctx
from outpost_kit import ids

pytestmark = pytest.mark.unit


@pytest.fixture
def fake() -> FakeDevices:
    return FakeDevices()


@pytest.fixture
def deps(fake: FakeDevices) -> handlers.Deps:
    return handlers.Deps(uow=fake, reads=FakeReads(fake))


async def _names(deps: handlers.Deps, ctx: RequestContext) -> list[str]:
    page = await handlers.list_devices(deps, ctx, api.ListDevices(query=ListQuery()))
    return sorted(d.name for d in page.data)


# --- devices ------------------------------------------------------------------------------


async def test_a_device_is_created_once_per_name_and_per_organization(
    deps: handlers.Deps,
) -> None:
    ctx, other = _ctx(uuid.uuid4()), _ctx(uuid.uuid4())
    made = await handlers.create_device(deps, ctx, api.CreateDevice(name="pump"))
    assert made.name == "pump" and made.status == api.DeviceStatus.REGISTERED
    assert (await handlers.get_device(deps, ctx, api.GetDevice(id=made.id))).id == made.id
    with pytest.raises(Conflict, match="already exists"):
        await handlers.create_device(deps, ctx, api.CreateDevice(name="pump"))
    # Another organization has names of its own, and does not see this one's devices.
    await handlers.create_device(deps, other, api.CreateDevice(name="pump"))
    with pytest.raises(NotFound):
        await handlers.get_device(deps, other, api.GetDevice(id=made.id))
    assert await _names(deps, ctx) == ["pump"]


async def test_a_name_taken_concurrently_is_a_conflict_and_nothing_is_kept(
    fake: FakeDevices, deps: handlers.Deps, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The name check passes, then a concurrent create commits the name first: the read
    model's unique name refuses the append (``Taken``), the use case answers 409."""
    ctx = _ctx(uuid.uuid4())
    checked = False

    async def race(tx: object, kind: str, name: str, other_than: object = None) -> bool:
        nonlocal checked
        if not checked:
            checked = True
            await handlers.create_device(deps, ctx, api.CreateDevice(name=name))
        return False

    monkeypatch.setattr("devices_fakes.FakeTx.name_taken", race)
    with pytest.raises(Conflict, match="a device named 'pump' already exists"):
        await handlers.create_device(deps, ctx, api.CreateDevice(name="pump"))
    assert checked
    assert len(fake.tenant(ctx.org_id).views(device_domain.STREAM_TYPE)) == 1


async def test_a_device_names_only_a_site_and_group_of_its_organization(
    deps: handlers.Deps,
) -> None:
    ctx, other = _ctx(uuid.uuid4()), _ctx(uuid.uuid4())
    theirs = await registry.create_site(deps, other, registry_api.CreateSite(name="hq"))
    with pytest.raises(ValidationFailed):
        await handlers.create_device(deps, ctx, api.CreateDevice(name="d", site_id=theirs.id))
    group = await registry.create_group(deps, ctx, registry_api.CreateDeviceGroup(name="g"))
    made = await handlers.create_device(deps, ctx, api.CreateDevice(name="d", group_id=group.id))
    assert made.group_id == group.id
    patch = api.DevicePatch(site_id=theirs.id)
    with pytest.raises(ValidationFailed):
        await handlers.update_device(deps, ctx, api.UpdateDevice(id=made.id, patch=patch))
    assert await _names(deps, ctx) == ["d"]


async def test_an_update_of_an_unknown_device_is_404_before_its_if_match(
    deps: handlers.Deps,
) -> None:
    ctx = _ctx(uuid.uuid4())
    with pytest.raises(NotFound):
        await handlers.update_device(
            deps,
            ctx,
            api.UpdateDevice(id=uuid.uuid4(), patch=api.DevicePatch(name="x"), expected_version=7),
        )
    made = await handlers.create_device(deps, ctx, api.CreateDevice(name="a"))
    await handlers.create_device(deps, ctx, api.CreateDevice(name="b"))
    with pytest.raises(Conflict, match="a device named 'b' already exists"):
        await handlers.update_device(
            deps, ctx, api.UpdateDevice(id=made.id, patch=api.DevicePatch(name="b"))
        )
    renamed = await handlers.update_device(
        deps, ctx, api.UpdateDevice(id=made.id, patch=api.DevicePatch(name="a"))
    )
    assert renamed.version == 1  # its own name again: nothing changed


async def test_a_bulk_change_applies_to_all_or_none(deps: handlers.Deps) -> None:
    ctx = _ctx(uuid.uuid4())
    for name in ("a", "b", "c"):
        await handlers.create_device(deps, ctx, api.CreateDevice(name=name))
    with pytest.raises(PreconditionFailed) as refused:
        await handlers.bulk_decommission_devices(
            deps, ctx, api.BulkDecommissionDevices(filter=None, expected_count=2)
        )
    assert refused.value.details == {"expectedCount": 2, "actualCount": 3}
    page = await handlers.list_devices(deps, ctx, api.ListDevices(query=ListQuery()))
    assert {d.status for d in page.data} == {api.DeviceStatus.REGISTERED}
    done = await handlers.bulk_decommission_devices(
        deps, ctx, api.BulkDecommissionDevices(filter=None, expected_count=3)
    )
    assert (done.matched, done.changed) == (3, 3)
    again = await handlers.bulk_decommission_devices(
        deps, ctx, api.BulkDecommissionDevices(filter=None, expected_count=3)
    )
    assert (again.matched, again.changed) == (3, 0)  # decommissioned already: no events


# --- the registry -------------------------------------------------------------------------


async def test_a_site_in_use_is_deleted_only_once_its_devices_leave(deps: handlers.Deps) -> None:
    ctx = _ctx(uuid.uuid4())
    site = await registry.create_site(deps, ctx, registry_api.CreateSite(name="hq"))
    with pytest.raises(Conflict, match="a site named 'hq' already exists"):
        await registry.create_site(deps, ctx, registry_api.CreateSite(name="hq"))
    device = await handlers.create_device(deps, ctx, api.CreateDevice(name="d", site_id=site.id))
    with pytest.raises(Conflict) as in_use:
        await registry.delete_site(deps, ctx, registry_api.Delete(id=site.id))
    assert in_use.value.details == {"deviceCount": 1}
    await handlers.decommission_device(deps, ctx, api.DecommissionDevice(id=device.id))
    await registry.delete_site(deps, ctx, registry_api.Delete(id=site.id))
    with pytest.raises(NotFound):
        await registry.get_site(deps, ctx, registry_api.Get(id=site.id))
    with pytest.raises(NotFound):
        await registry.delete_site(deps, ctx, registry_api.Delete(id=site.id))


async def test_a_sensor_key_is_declared_once_on_a_live_device(deps: handlers.Deps) -> None:
    ctx = _ctx(uuid.uuid4())
    device = await handlers.create_device(deps, ctx, api.CreateDevice(name="d"))
    declare = registry_api.DeclareSensor(device_id=device.id, key="t", unit="C")
    sensor = await registry.declare_sensor(deps, ctx, declare)
    assert (sensor.device_id, sensor.key) == (device.id, "t")
    with pytest.raises(Conflict, match="already has a sensor 't'"):
        await registry.declare_sensor(deps, ctx, declare)
    with pytest.raises(ValidationFailed):
        await registry.declare_sensor(
            deps, ctx, registry_api.DeclareSensor(device_id=uuid.uuid4(), key="t")
        )
    await handlers.decommission_device(deps, ctx, api.DecommissionDevice(id=device.id))
    with pytest.raises(Conflict, match="decommissioned"):
        await registry.declare_sensor(
            deps, ctx, registry_api.DeclareSensor(device_id=device.id, key="rh")
        )


# --- commands -----------------------------------------------------------------------------


def _config() -> commands.CommandsConfig:
    return commands.CommandsConfig(
        resend=timedelta(seconds=30),
        backoff_min=timedelta(seconds=1),
        backoff_max=timedelta(seconds=60),
    )


async def test_an_offline_device_is_offered_again_with_back_off_until_its_command_expires(
    fake: FakeDevices, deps: handlers.Deps, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = [datetime(2025, 1, 1, tzinfo=UTC)]
    monkeypatch.setattr(ids, "now", lambda: clock[0])
    ctx = _ctx(uuid.uuid4())
    device = await handlers.create_device(deps, ctx, api.CreateDevice(name="d"))
    broker = FakeDelivery(online=False)
    cmds = commands.CommandDeps(uow=fake, config=_config(), deliver=broker)
    body = command_api.CommandBody(name="reboot", ttl_seconds=10)
    made = await commands.create_command(
        deps=cmds, ctx=ctx, cmd=command_api.CreateCommand(device_id=device.id, command=body)
    )
    assert made.status == CommandStatus.PENDING
    dues = []
    for _ in range(3):
        assert await commands.sweep(cmds) == 1  # the wake-up is due: claimed and delivered
        assert await commands.sweep(cmds) == 0  # and not due again until its back-off
        wakeup = fake.world.wakeups[device.id]
        dues.append((wakeup.due - clock[0], wakeup.attempts))
        clock[0] = wakeup.due
    # 1 s, then 2 s, then 4 s: each offer found nobody subscribed.
    assert dues == [(timedelta(seconds=s), n) for s, n in ((1, 1), (2, 2), (4, 3))]
    clock[0] += timedelta(seconds=10)
    assert await commands.sweep(cmds) == 1
    assert command_statuses(fake, ctx.org_id) == {made.id: CommandStatus.EXPIRED}
    assert len(broker.offers) == 3  # an expired command is not offered
    assert device.id not in fake.world.wakeups  # nothing waits: forgotten


async def test_an_online_device_gets_its_commands_and_desired_state_once(
    fake: FakeDevices, deps: handlers.Deps
) -> None:
    ctx = _ctx(uuid.uuid4())
    device = await handlers.create_device(deps, ctx, api.CreateDevice(name="d"))
    broker = FakeDelivery(online=True)
    cmds = commands.CommandDeps(uow=fake, config=_config(), deliver=broker)
    made = await commands.create_command(
        cmds,
        ctx,
        command_api.CreateCommand(device_id=device.id, command=command_api.CommandBody(name="x")),
    )
    await commands.change_desired(
        cmds,
        ctx,
        command_api.ChangeDesiredState(device_id=device.id, desired={"fan": "on"}),
    )
    assert await commands.deliver_device(cmds, ctx.org_id, device.id) is True
    assert command_statuses(fake, ctx.org_id) == {made.id: CommandStatus.SENT}
    assert [o["name"] for _, o in broker.offers] == ["x", STATE_COMMAND]
    assert fake.world.states[device.id].delivered_version == 1
    # SENT without an ack: offered again after ``resend``; the desired state is not.
    assert await commands.deliver_device(cmds, ctx.org_id, device.id) is True
    assert [o["name"] for _, o in broker.offers] == ["x", STATE_COMMAND, "x"]
    decommissioned = api.DecommissionDevice(id=device.id)
    await handlers.decommission_device(deps, ctx, decommissioned)
    with pytest.raises(Conflict, match="decommissioned"):
        await commands.create_command(
            cmds,
            ctx,
            command_api.CreateCommand(
                device_id=device.id, command=command_api.CommandBody(name="y")
            ),
        )


async def test_a_state_report_of_an_unknown_device_is_dropped(fake: FakeDevices) -> None:
    org = uuid.uuid4()
    cmds = commands.CommandDeps(uow=fake, config=_config())
    await commands.record_report(cmds, org, uuid.uuid4(), {"fan": "on"})
    assert fake.world.states == {}
