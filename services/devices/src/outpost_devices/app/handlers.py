"""Devices' use cases and handler table."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec
from sqlalchemy.exc import IntegrityError

from outpost_contracts import devices as api
from outpost_contracts.base import Empty
from outpost_contracts.envelope import PLATFORM_ORG_ID, RequestContext
from outpost_contracts.errors import (
    Conflict,
    NotFound,
    PreconditionFailed,
    ValidationFailed,
    validation_error,
)
from outpost_contracts.query import Node, Page
from outpost_contracts.rpc import Operation
from outpost_devices.adapters import queries
from outpost_devices.app import provisioning
from outpost_devices.app.references import patched, require_site_and_group
from outpost_devices.domain import devices
from outpost_kit import aggregate, ids
from outpost_kit.db.listing import compile_filter, list_page
from outpost_kit.db.reads import TenantReads
from outpost_kit.db.uow import UnitOfWorkFactory


def _no_provisioning() -> provisioning.ProvisioningConfig:
    return provisioning.ProvisioningConfig(vault=None)


@dataclass(frozen=True)
class Deps:
    uow: UnitOfWorkFactory  # changes, and reads inside a change
    reads: TenantReads  # the read-only requests
    provisioning: provisioning.ProvisioningConfig = field(default_factory=_no_provisioning)


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
        await require_site_and_group(uow, cmd.site_id, cmd.group_id)
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


async def _read(deps: Deps, ctx: RequestContext, key: Any, *, by: str) -> api.DeviceView:
    async with deps.reads(ctx.org_id) as conn:
        row = await conn.fetchrow(queries.SELECT_DEVICE_BY[by], key)
    if row is None:
        raise NotFound("no such device")
    return queries.device_view(row)


async def get_device(deps: Deps, ctx: RequestContext, q: api.GetDevice) -> api.DeviceView:
    return await _read(deps, ctx, q.id, by="id")


async def get_device_by_name(
    deps: Deps, ctx: RequestContext, q: api.GetDeviceByName
) -> api.DeviceView:
    return await _read(deps, ctx, q.name, by="name")


async def list_devices(deps: Deps, ctx: RequestContext, q: api.ListDevices) -> Page[api.DeviceView]:
    async with deps.uow(ctx.org_id) as uow:
        return await list_page(uow.conn, queries.DEVICES, q.query, queries.device_view)


async def _execute(
    uow: Any,
    ctx: RequestContext,
    device_id: Any,
    command: devices.Command,
    expected_version: int | None = None,
) -> list[Any]:
    _state, envelopes = await aggregate.execute(
        uow,
        ctx,
        stream_id=device_id,
        stream_type=devices.STREAM_TYPE,
        decide=devices.decide,
        evolve=devices.evolve,
        command=command,
        org_id=ctx.org_id,
        expected_version=expected_version,
    )
    return envelopes


async def _name_free(uow: Any, name: str, device_id: Any) -> None:
    taken = (
        await uow.execute(
            "SELECT 1 FROM devices WHERE name = :n AND id <> :id", {"n": name, "id": device_id}
        )
    ).first()
    if taken is not None:
        raise Conflict(f"a device named '{name}' already exists")


async def _require_device(uow: Any, device_id: Any) -> None:
    """404 before anything else (If-Match included) for a device this tenant cannot see."""
    state, _version = await aggregate.load(uow, devices.evolve, device_id)
    if state is None:
        raise NotFound("no such device")


async def update_device(deps: Deps, ctx: RequestContext, cmd: api.UpdateDevice) -> api.DeviceView:
    _tenant(ctx)
    async with deps.uow(ctx.org_id) as uow:
        await _require_device(uow, cmd.id)
        if isinstance(cmd.patch.name, str):
            await _name_free(uow, cmd.patch.name, cmd.id)
        await require_site_and_group(uow, patched(cmd.patch.site_id), patched(cmd.patch.group_id))
        try:
            await _execute(uow, ctx, cmd.id, cmd.patch, cmd.expected_version)
        except IntegrityError as exc:  # a concurrent change took the name first
            raise Conflict(f"a device named '{cmd.patch.name}' already exists") from exc
        view = await _get(uow, cmd.id)
        await uow.commit()
    return view


async def decommission_device(
    deps: Deps, ctx: RequestContext, cmd: api.DecommissionDevice
) -> Empty:
    _tenant(ctx)
    async with deps.uow(ctx.org_id) as uow:
        await _require_device(uow, cmd.id)
        await _execute(uow, ctx, cmd.id, devices.Decommission(), cmd.expected_version)
        await uow.commit()
    return Empty()


async def _bulk(
    deps: Deps,
    ctx: RequestContext,
    node: Node | None,
    expected: int,
    command: devices.Command,
) -> api.BulkResult:
    """Every device the filter matches, locked, counted against ``expected``; then the
    command on each, all in one transaction (docs/api.md, "Bulk changes are guarded")."""
    _tenant(ctx)
    where, params = compile_filter(queries.DEVICES, node)
    async with deps.uow(ctx.org_id) as uow:
        # One more than the limit is enough to know the filter matches too many.
        params["_cap"] = api.MAX_BULK + 1
        rows = (
            await uow.execute(
                f"SELECT id FROM devices WHERE {where} ORDER BY id LIMIT :_cap FOR UPDATE", params
            )
        ).all()
        matched = len(rows)
        if matched > api.MAX_BULK:
            raise validation_error(
                "filter", f"matches more than {api.MAX_BULK} devices: narrow it down"
            )
        if matched != expected:
            raise PreconditionFailed(
                f"the filter matches {matched} devices, not {expected} (X-Expected-Count):"
                " nothing was changed",
                details={"expectedCount": expected, "actualCount": matched},
            )
        if isinstance(command, api.DevicePatch):
            await require_site_and_group(uow, patched(command.site_id), patched(command.group_id))
        changed = 0
        for row in rows:
            if await _execute(uow, ctx, row.id, command):
                changed += 1
        await uow.commit()
    return api.BulkResult(matched=matched, changed=changed)


async def bulk_update_devices(
    deps: Deps, ctx: RequestContext, cmd: api.BulkUpdateDevices
) -> api.BulkResult:
    if cmd.patch.name is not msgspec.UNSET:
        raise validation_error("name", "names are unique: rename one device at a time")
    return await _bulk(deps, ctx, cmd.filter, cmd.expected_count, cmd.patch)


async def bulk_decommission_devices(
    deps: Deps, ctx: RequestContext, cmd: api.BulkDecommissionDevices
) -> api.BulkResult:
    return await _bulk(deps, ctx, cmd.filter, cmd.expected_count, devices.Decommission())


Handler = Callable[[Deps, RequestContext, Any], Awaitable[Any]]

HANDLERS: dict[Operation[Any, Any], Handler] = {
    api.CREATE_DEVICE: create_device,
    api.GET_DEVICE: get_device,
    api.GET_DEVICE_BY_NAME: get_device_by_name,
    api.LIST_DEVICES: list_devices,
    api.UPDATE_DEVICE: update_device,
    api.DECOMMISSION_DEVICE: decommission_device,
    api.BULK_UPDATE_DEVICES: bulk_update_devices,
    api.BULK_DECOMMISSION_DEVICES: bulk_decommission_devices,
    **provisioning.HANDLERS,
}
