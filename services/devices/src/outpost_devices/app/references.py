"""Checks that one aggregate names another of the same organization, made in the unit of work
of the change (RLS scopes every query to the tenant, so another organization's object is
simply not there).

The row found is locked ``FOR SHARE`` until the change commits (``DeviceRecords.has`` and
``device_status(share=True)``): a concurrent delete of the site or group (which locks it
``FOR UPDATE`` first) waits, then sees the new reference and refuses; or it deletes first and
this check finds nothing."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import msgspec

from outpost_contracts.devices import DeviceStatus
from outpost_contracts.errors import Conflict, validation_error
from outpost_devices.app.ports import DeviceRecords
from outpost_devices.domain import registry


async def require_site_and_group(tx: DeviceRecords, site_id: Any, group_id: Any) -> None:
    """``siteId``/``groupId`` of a device, when set, name a site/group of the organization."""
    if isinstance(site_id, UUID) and not await tx.has(registry.SITE, site_id):
        raise validation_error("siteId", f"no site {site_id} in this organization")
    if isinstance(group_id, UUID) and not await tx.has(registry.DEVICE_GROUP, group_id):
        raise validation_error("groupId", f"no device group {group_id} in this organization")


async def require_device(tx: DeviceRecords, device_id: UUID) -> None:
    """A component or sensor belongs to a device of the organization that is not retired."""
    status = await tx.device_status(device_id, share=True)
    if status is None:
        raise validation_error("deviceId", f"no device {device_id} in this organization")
    if status == DeviceStatus.DECOMMISSIONED:
        raise Conflict(f"device {device_id} is decommissioned and can no longer change")


def patched(value: Any) -> Any:
    """A patch field's new value, or None when the patch leaves it alone or clears it."""
    return None if value is msgspec.UNSET else value
