"""Checks that one aggregate names another of the same organization, made in the unit of work
of the change (RLS scopes every query to the tenant, so another organization's object is
simply not there).

The row found is locked ``FOR SHARE`` until the change commits: a concurrent delete of the
site or group (which locks it ``FOR UPDATE`` first) waits, then sees the new reference and
refuses; or it deletes first and this check finds nothing."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import msgspec

from outpost_contracts.devices import DeviceStatus
from outpost_contracts.errors import Conflict, validation_error


async def _exists(uow: Any, table: str, key: UUID) -> bool:
    sql = f"SELECT 1 FROM {table} WHERE id = :id FOR SHARE"
    return (await uow.execute(sql, {"id": key})).first() is not None


async def require_site_and_group(uow: Any, site_id: Any, group_id: Any) -> None:
    """``siteId``/``groupId`` of a device, when set, name a site/group of the organization."""
    if isinstance(site_id, UUID) and not await _exists(uow, "sites", site_id):
        raise validation_error("siteId", f"no site {site_id} in this organization")
    if isinstance(group_id, UUID) and not await _exists(uow, "device_groups", group_id):
        raise validation_error("groupId", f"no device group {group_id} in this organization")


async def require_device(uow: Any, device_id: UUID) -> None:
    """A component or sensor belongs to a device of the organization that is not retired."""
    row = (
        await uow.execute("SELECT status FROM devices WHERE id = :id FOR SHARE", {"id": device_id})
    ).first()
    if row is None:
        raise validation_error("deviceId", f"no device {device_id} in this organization")
    if row.status == DeviceStatus.DECOMMISSIONED.value:
        raise Conflict(f"device {device_id} is decommissioned and can no longer change")


def patched(value: Any) -> Any:
    """A patch field's new value, or None when the patch leaves it alone or clears it."""
    return None if value is msgspec.UNSET else value
