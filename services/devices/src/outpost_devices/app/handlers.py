"""Devices' use cases and handler table."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import msgspec

from outpost_contracts import device_config
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
from outpost_contracts.fleet import DeviceProfileSpec
from outpost_contracts.query import Node, Page
from outpost_contracts.rpc import Operation
from outpost_devices.app import profiles, provisioning
from outpost_devices.app.aggregates import DEVICES
from outpost_devices.app.ports import DeviceRecords, DevicesReads, DevicesUnitOfWork
from outpost_devices.app.references import patched, require_site_and_group
from outpost_devices.domain import devices
from outpost_kit import ids
from outpost_kit.aggregate import Taken
from outpost_kit.db.eventstore import ConcurrencyConflict


def _no_provisioning() -> provisioning.ProvisioningConfig:
    return provisioning.ProvisioningConfig(vault=None)


@dataclass(frozen=True)
class Deps:
    uow: DevicesUnitOfWork  # changes, and reads inside a change
    reads: DevicesReads  # the read-only requests
    provisioning: provisioning.ProvisioningConfig = field(default_factory=_no_provisioning)
    resolve_profile: profiles.ResolveProfile | None = None  # fleet's, over the broker


ATTEMPTS = 3  # a fleet batch that meets a concurrent change is tried again on the new state


async def _profile(
    deps: Deps, ctx: RequestContext, profile_id: UUID | msgspec.UnsetType | None
) -> DeviceProfileSpec | None:
    """The device profile a change sets, resolved before its transaction opens."""
    if not isinstance(profile_id, UUID):
        return None
    return await profiles.resolve(deps.resolve_profile, ctx, profile_id)


def _tenant(ctx: RequestContext) -> None:
    if ctx.org_id == PLATFORM_ORG_ID:
        raise ValidationFailed("devices belong to an organization: name it with X-Organization")


async def create_device(deps: Deps, ctx: RequestContext, cmd: api.CreateDevice) -> api.DeviceView:
    _tenant(ctx)
    device_id = ids.new_id()
    profile = await _profile(deps, ctx, cmd.profile_id)
    async with deps.uow(ctx.org_id) as tx:
        if await tx.name_taken(devices.STREAM_TYPE, cmd.name):
            raise Conflict(f"a device named '{cmd.name}' already exists")
        await require_site_and_group(tx, cmd.site_id, cmd.group_id)
        try:
            await DEVICES.execute(tx, ctx, stream_id=device_id, command=cmd, org_id=ctx.org_id)
        except Taken as exc:  # a concurrent create took the name first
            raise Conflict(f"a device named '{cmd.name}' already exists") from exc
        if profile is not None:
            await profiles.carry_out_all(tx, ctx, [device_id], profile, set_profile=False)
        view = await _get(tx, device_id)
        await tx.commit()
    return view


async def _get(tx: DeviceRecords, device_id: UUID) -> api.DeviceView:
    return _found(await tx.find(devices.STREAM_TYPE, device_id))


def _found(view: api.DeviceView | None) -> api.DeviceView:
    if view is None:
        raise NotFound("no such device")
    return view


async def get_device(deps: Deps, ctx: RequestContext, q: api.GetDevice) -> api.DeviceView:
    return _found(await deps.reads.find(ctx.org_id, devices.STREAM_TYPE, q.id))


async def get_device_by_name(
    deps: Deps, ctx: RequestContext, q: api.GetDeviceByName
) -> api.DeviceView:
    return _found(await deps.reads.device_by_name(ctx.org_id, q.name))


async def list_devices(deps: Deps, ctx: RequestContext, q: api.ListDevices) -> Page[api.DeviceView]:
    async with deps.uow(ctx.org_id) as tx:
        return await tx.page(devices.STREAM_TYPE, q.query)


async def _execute(
    tx: DeviceRecords,
    ctx: RequestContext,
    device_id: UUID,
    command: devices.Command,
    expected_version: int | None = None,
) -> list[Any]:
    _state, envelopes = await DEVICES.execute(
        tx,
        ctx,
        stream_id=device_id,
        command=command,
        org_id=ctx.org_id,
        expected_version=expected_version,
    )
    return envelopes


async def _require_device(tx: DeviceRecords, device_id: UUID) -> None:
    """404 before anything else (If-Match included) for a device this tenant cannot see."""
    state, _version = await DEVICES.load(tx, device_id)
    if state is None:
        raise NotFound("no such device")


async def update_device(deps: Deps, ctx: RequestContext, cmd: api.UpdateDevice) -> api.DeviceView:
    _tenant(ctx)
    if isinstance(cmd.patch.profile_id, UUID):  # 404 first, before asking fleet anything
        _found(await deps.reads.find(ctx.org_id, devices.STREAM_TYPE, cmd.id))
    profile = await _profile(deps, ctx, cmd.patch.profile_id)
    async with deps.uow(ctx.org_id) as tx:
        await _require_device(tx, cmd.id)
        name = cmd.patch.name
        if isinstance(name, str) and await tx.name_taken(devices.STREAM_TYPE, name, cmd.id):
            raise Conflict(f"a device named '{name}' already exists")
        await require_site_and_group(tx, patched(cmd.patch.site_id), patched(cmd.patch.group_id))
        try:
            await _execute(tx, ctx, cmd.id, cmd.patch, cmd.expected_version)
        except Taken as exc:  # a concurrent change took the name first
            raise Conflict(f"a device named '{cmd.patch.name}' already exists") from exc
        if profile is not None:  # what the profile lists, in the same transaction
            await profiles.carry_out_all(tx, ctx, [cmd.id], profile, set_profile=False)
        view = await _get(tx, cmd.id)
        await tx.commit()
    return view


async def decommission_device(
    deps: Deps, ctx: RequestContext, cmd: api.DecommissionDevice
) -> Empty:
    _tenant(ctx)
    async with deps.uow(ctx.org_id) as tx:
        await _require_device(tx, cmd.id)
        await _execute(tx, ctx, cmd.id, devices.Decommission(), cmd.expected_version)
        await tx.commit()
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
    profile = await _profile(deps, ctx, getattr(command, "profile_id", msgspec.UNSET))
    async with deps.uow(ctx.org_id) as tx:
        # One more than the limit is enough to know the filter matches too many.
        matching = await tx.lock_devices(node, api.MAX_BULK + 1)
        matched = len(matching)
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
            await require_site_and_group(tx, patched(command.site_id), patched(command.group_id))
        changed = 0
        for device_id in matching:
            if await _execute(tx, ctx, device_id, command):
                changed += 1
        if profile is not None:
            await profiles.carry_out_all(tx, ctx, matching, profile, set_profile=False)
        await tx.commit()
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


async def apply_device_profile(
    deps: Deps, ctx: RequestContext, cmd: device_config.ApplyDeviceProfile
) -> device_config.ApplyDeviceProfileResult:
    """Fleet's batch (at most 500, one transaction): every device named gets the profile
    and its ``profileId``; applying again changes nothing. Devices that are not the
    organization's, or decommissioned, are ``missing``."""
    _tenant(ctx)
    for attempt in range(ATTEMPTS):
        try:
            async with deps.uow(ctx.org_id) as tx:
                applied = await profiles.carry_out_all(
                    tx, ctx, cmd.device_ids, cmd.profile, set_profile=True
                )
                await tx.commit()
            break
        except (ConcurrencyConflict, Taken):
            if attempt == ATTEMPTS - 1:
                raise
    done = set(applied)
    missing = [d for d in dict.fromkeys(cmd.device_ids) if d not in done]
    return device_config.ApplyDeviceProfileResult(applied=applied, missing=missing)


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
    device_config.APPLY_DEVICE_PROFILE: apply_device_profile,
    **provisioning.HANDLERS,
}
