"""The sites, device-groups, components and sensors collections: filterable fields and the
row → view mappings."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec

from outpost_contracts import registry as api
from outpost_kit.db.listing import Collection, Field

_TIMES = {
    "createdAt": Field("created_at", "datetime"),
    "updatedAt": Field("updated_at", "datetime"),
}
_TAIL = "created_at, updated_at, version"

SITES = Collection(
    table="sites",
    columns=f"id, name, address, location, timezone, attributes, {_TAIL}",
    fields={
        "id": Field("id", "uuid"),
        "name": Field("name"),
        "address": Field("address"),
        "timezone": Field("timezone"),
        **_TIMES,
    },
)
DEVICE_GROUPS = Collection(
    table="device_groups",
    columns=f"id, name, description, attributes, {_TAIL}",
    fields={
        "id": Field("id", "uuid"),
        "name": Field("name"),
        "description": Field("description"),
        **_TIMES,
    },
)
COMPONENTS = Collection(
    table="components",
    columns=f"id, device_id, name, kind, attributes, {_TAIL}",
    fields={
        "id": Field("id", "uuid"),
        "deviceId": Field("device_id", "uuid"),
        "name": Field("name"),
        "kind": Field("kind"),
        **_TIMES,
    },
)
SENSORS = Collection(
    table="sensors",
    columns=f"id, device_id, key, value_type, unit, valid_range, {_TAIL}",
    fields={
        "id": Field("id", "uuid"),
        "deviceId": Field("device_id", "uuid"),
        "key": Field("key"),
        "unit": Field("unit"),
        "valueType": Field("value_type", ops=frozenset({"eq", "ne", "in", "nin"})),
        **_TIMES,
    },
)


def select_by_id(collection: Collection) -> str:
    """One row by its id, for the raw read path (asyncpg placeholders)."""
    return f"SELECT {collection.columns} FROM {collection.table} WHERE id = $1"


def _json(value: Any) -> Any:
    return msgspec.json.decode(value) if isinstance(value, (str, bytes)) else value


def _common(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
        "version": row["version"],
    }


def site_view(row: Mapping[str, Any]) -> api.SiteView:
    location = _json(row["location"])
    return api.SiteView(
        **_common(row),
        name=row["name"],
        address=row["address"],
        location=None if location is None else msgspec.convert(location, api.Location),
        timezone=row["timezone"],
        attributes=_json(row["attributes"]),
    )


def group_view(row: Mapping[str, Any]) -> api.DeviceGroupView:
    return api.DeviceGroupView(
        **_common(row),
        name=row["name"],
        description=row["description"],
        attributes=_json(row["attributes"]),
    )


def component_view(row: Mapping[str, Any]) -> api.ComponentView:
    return api.ComponentView(
        **_common(row),
        device_id=row["device_id"],
        name=row["name"],
        kind=row["kind"],
        attributes=_json(row["attributes"]),
    )


def sensor_view_range(raw: Any) -> api.ValidRange | None:
    valid_range = _json(raw)
    return None if valid_range is None else msgspec.convert(valid_range, api.ValidRange)


def sensor_view(row: Mapping[str, Any]) -> api.SensorView:
    valid_range = _json(row["valid_range"])
    return api.SensorView(
        **_common(row),
        device_id=row["device_id"],
        key=row["key"],
        value_type=api.ValueType(row["value_type"]),
        unit=row["unit"],
        valid_range=None if valid_range is None else msgspec.convert(valid_range, api.ValidRange),
    )
