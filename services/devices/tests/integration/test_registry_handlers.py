"""The registry's use cases against real Postgres: a site deleted while a device is being
pointed at it, concurrent sensor declarations, and sensor events in the outbox."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from devices_testkit import ctx as ctx_of
from devices_testkit import devices_deps

from outpost_contracts import devices as dev_api
from outpost_contracts import registry as api
from outpost_contracts.errors import Conflict, ValidationFailed
from outpost_contracts.query import ListQuery
from outpost_devices.app import handlers, registry

pytestmark = pytest.mark.integration


@pytest.fixture
async def deps(postgres_dsn: str) -> AsyncIterator[handlers.Deps]:
    async with devices_deps(postgres_dsn) as found:
        yield found


async def _outcome(coro: Any) -> str:
    try:
        await coro
    except (Conflict, ValidationFailed) as exc:
        return type(exc).__name__
    return "ok"


async def test_a_site_is_never_deleted_under_a_device(deps: handlers.Deps) -> None:
    """Delete and a device create naming the site race: exactly one wins, every time."""
    ctx = ctx_of(uuid.uuid4())
    seen = set()
    for i in range(12):
        site = await registry.create_site(deps, ctx, api.CreateSite(name=f"s-{i}"))
        create = handlers.create_device(
            deps, ctx, dev_api.CreateDevice(name=f"d-{i}", site_id=site.id)
        )
        delete = registry.delete_site(deps, ctx, api.Delete(id=site.id))
        made, deleted = await asyncio.gather(_outcome(create), _outcome(delete))
        assert (made, deleted) in {("ok", "Conflict"), ("ValidationFailed", "ok")}
        seen.add((made, deleted))
    async with deps.uow(ctx.org_id) as uow:
        dangling = (
            await uow.execute(
                "SELECT count(*) FROM devices d WHERE site_id IS NOT NULL"
                " AND NOT EXISTS (SELECT 1 FROM sites s WHERE s.id = d.site_id)"
            )
        ).scalar_one()
    assert dangling == 0, seen


async def test_concurrent_declarations_of_one_key_make_one_sensor(deps: handlers.Deps) -> None:
    ctx = ctx_of(uuid.uuid4())
    device = await handlers.create_device(deps, ctx, dev_api.CreateDevice(name="pump"))
    cmd = api.DeclareSensor(device_id=device.id, key="temperature", unit="C")
    outcomes = await asyncio.gather(
        *(_outcome(registry.declare_sensor(deps, ctx, cmd)) for _ in range(4))
    )
    assert sorted(outcomes) == ["Conflict", "Conflict", "Conflict", "ok"]
    page = await registry.list_sensors(deps, ctx, api.ListRegistry(query=ListQuery()))
    assert [s.key for s in page.data] == ["temperature"]


async def test_sensor_events_go_through_the_outbox(deps: handlers.Deps) -> None:
    org = uuid.uuid4()
    ctx = ctx_of(org)
    device = await handlers.create_device(deps, ctx, dev_api.CreateDevice(name="pump"))
    sensor = await registry.declare_sensor(
        deps, ctx, api.DeclareSensor(device_id=device.id, key="rh", unit="%")
    )
    await registry.update_sensor(
        deps, ctx, api.UpdateSensor(id=sensor.id, patch=api.SensorPatch(unit="ratio"))
    )
    await registry.remove_sensor(deps, ctx, api.Delete(id=sensor.id))
    async with deps.uow(None) as uow:
        subjects = [
            row.subject
            for row in await uow.execute(
                "SELECT subject FROM outbox WHERE subject LIKE :s ORDER BY position",
                {"s": f"outpost.evt.devices.{org}.Sensor%"},
            )
        ]
    assert subjects == [
        f"outpost.evt.devices.{org}.{name}.v1"
        for name in ("SensorDeclared", "SensorUpdated", "SensorRemoved")
    ]
