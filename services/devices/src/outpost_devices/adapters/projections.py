"""The device registry read model, updated in the transaction that appends the events."""

from __future__ import annotations

import msgspec
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from outpost_contracts.devices import DeviceRegistered, DeviceStatus
from outpost_contracts.envelope import EventEnvelope

_encode = msgspec.json.encode


class DevicesProjector:
    async def apply(self, conn: AsyncConnection, e: EventEnvelope) -> None:
        data = e.data
        if isinstance(data, DeviceRegistered):
            await conn.execute(
                text(
                    "INSERT INTO devices (org_id, id, name, status, device_type, site_id, group_id,"
                    " tags, attributes, created_at, updated_at, version) VALUES (:org, :id, :name,"
                    " :status, :type, :site, :group, CAST(:tags AS jsonb), CAST(:attrs AS jsonb),"
                    " :at, :at, :v)"
                ),
                {
                    "org": e.org_id,
                    "id": e.stream_id,
                    "name": data.name,
                    "status": DeviceStatus.REGISTERED.value,
                    "type": data.device_type,
                    "site": data.site_id,
                    "group": data.group_id,
                    "tags": _encode(data.tags).decode(),
                    "attrs": _encode(data.attributes).decode(),
                    "at": e.occurred_at,
                    "v": e.version,
                },
            )
        else:
            await conn.execute(
                text(
                    "UPDATE devices SET updated_at = :at, version = :v"
                    " WHERE org_id = :org AND id = :id"
                ),
                {"org": e.org_id, "id": e.stream_id, "at": e.occurred_at, "v": e.version},
            )


PROJECTORS = (DevicesProjector(),)
