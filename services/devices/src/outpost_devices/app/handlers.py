"""Devices' use cases and handler table."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import IntegrityError

from outpost_contracts import devices as api
from outpost_contracts.envelope import PLATFORM_ORG_ID, RequestContext
from outpost_contracts.errors import Conflict, NotFound, ValidationFailed
from outpost_contracts.query import Page
from outpost_contracts.rpc import Operation
from outpost_devices.adapters import queries
from outpost_devices.domain import devices
from outpost_kit import aggregate, ids
from outpost_kit.db.listing import list_page
from outpost_kit.db.uow import UnitOfWorkFactory


@dataclass(frozen=True)
class Deps:
    uow: UnitOfWorkFactory


def _tenant(ctx: RequestContext) -> None:
    if ctx.org_id == PLATFORM_ORG_ID:
        raise ValidationFailed("devices belong to an organization: name it with X-Organization")


async def create_device(deps: Deps, ctx: RequestContext, cmd: api.CreateDevice) -> api.DeviceView:
    _tenant(ctx)
    device_id = ids.new_id()
    async with deps.uow(ctx.org_id) as uow:
        taken = (
            await uow.execute("SELECT 1 FROM devices WHERE name = :n", {"n": cmd.name})
        ).first()
        if taken is not None:
            raise Conflict(f"a device named '{cmd.name}' already exists")
        try:
            await aggregate.execute(
                uow,
                ctx,
                stream_id=device_id,
                stream_type=devices.STREAM_TYPE,
                decide=devices.decide,
                evolve=devices.evolve,
                command=cmd,
                org_id=ctx.org_id,
            )
        except IntegrityError as exc:  # a concurrent create took the name first
            raise Conflict(f"a device named '{cmd.name}' already exists") from exc
        view = await _get(uow, device_id)
        await uow.commit()
    return view


async def _get(uow: Any, device_id: Any, *, by: str = "id") -> api.DeviceView:
    row = (
        await uow.execute(
            f"SELECT {queries.DEVICES.columns} FROM devices WHERE {by} = :key", {"key": device_id}
        )
    ).first()
    if row is None:
        raise NotFound("no such device")
    return queries.device_view(row._mapping)


async def get_device(deps: Deps, ctx: RequestContext, q: api.GetDevice) -> api.DeviceView:
    async with deps.uow(ctx.org_id) as uow:
        return await _get(uow, q.id)


async def get_device_by_name(
    deps: Deps, ctx: RequestContext, q: api.GetDeviceByName
) -> api.DeviceView:
    async with deps.uow(ctx.org_id) as uow:
        return await _get(uow, q.name, by="name")


async def list_devices(deps: Deps, ctx: RequestContext, q: api.ListDevices) -> Page[api.DeviceView]:
    async with deps.uow(ctx.org_id) as uow:
        return await list_page(uow.conn, queries.DEVICES, q.query, queries.device_view)


Handler = Callable[[Deps, RequestContext, Any], Awaitable[Any]]

HANDLERS: dict[Operation[Any, Any], Handler] = {
    api.CREATE_DEVICE: create_device,
    api.GET_DEVICE: get_device,
    api.GET_DEVICE_BY_NAME: get_device_by_name,
    api.LIST_DEVICES: list_devices,
}
