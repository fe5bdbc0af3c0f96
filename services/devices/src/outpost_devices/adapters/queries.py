"""The devices collection: filterable fields and the row → view mapping."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec

from outpost_contracts.devices import DeviceStatus, DeviceView, Tag
from outpost_kit.db.listing import Collection, Field, Relation

DEVICES = Collection(
    table="devices",
    columns=(
        "id, name, status, device_type, site_id, group_id, tags, attributes, created_at,"
        " updated_at, version"
    ),
    fields={
        "id": Field("id", "uuid"),
        "name": Field("name"),
        "status": Field("status", ops=frozenset({"eq", "ne", "in", "nin"})),
        "deviceType": Field("device_type"),
        "siteId": Field("site_id", "uuid"),
        "groupId": Field("group_id", "uuid"),
        "createdAt": Field("created_at", "datetime"),
        "updatedAt": Field("updated_at", "datetime"),
    },
    relations={"tags": Relation("tags", {"key": "text", "value": "text"})},
)

# One device by its id or its name, for the raw read path (asyncpg placeholders).
SELECT_DEVICE_BY = {
    key: f"SELECT {DEVICES.columns} FROM devices WHERE {key} = $1" for key in ("id", "name")
}


def _json(value: Any) -> Any:
    return msgspec.json.decode(value) if isinstance(value, (str, bytes)) else value


def device_view(row: Mapping[str, Any]) -> DeviceView:
    return DeviceView(
        id=row["id"],
        name=row["name"],
        status=DeviceStatus(row["status"]),
        device_type=row["device_type"],
        site_id=row["site_id"],
        group_id=row["group_id"],
        tags=msgspec.convert(_json(row["tags"]), list[Tag]),
        attributes=_json(row["attributes"]),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        version=row["version"],
    )
