"""Read models of sites, device groups, components and sensors: one row per live aggregate,
updated in the transaction that appends its events; deleting the aggregate deletes the row."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import msgspec
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from outpost_contracts import registry as api
from outpost_contracts.base import Event
from outpost_contracts.envelope import EventEnvelope
from outpost_devices.domain import registry

JSON_COLUMNS = frozenset({"attributes", "location", "valid_range"})


def _sql_value(column: str, value: Any) -> Any:
    if column in JSON_COLUMNS:
        return None if value is None else msgspec.json.encode(value).decode()
    if isinstance(value, enum.Enum):
        return value.value
    return value


def _placeholder(column: str) -> str:
    return f"CAST(:{column} AS jsonb)" if column in JSON_COLUMNS else f":{column}"


@dataclass(frozen=True)
class _Table:
    name: str
    created: type[Event]
    updated: type[Event]
    deleted: type[Event]
    fields: Mapping[str, str]  # API name → column (the domain's patchable fields)

    @property
    def columns(self) -> tuple[str, ...]:
        """The created event's fields, named as the table's columns."""
        return tuple(f.name for f in msgspec.structs.fields(self.created))


TABLES = (
    _Table("sites", api.SiteCreated, api.SiteUpdated, api.SiteDeleted, registry.SITE_FIELDS),
    _Table(
        "device_groups",
        api.DeviceGroupCreated,
        api.DeviceGroupUpdated,
        api.DeviceGroupDeleted,
        registry.GROUP_FIELDS,
    ),
    _Table(
        "components",
        api.ComponentAdded,
        api.ComponentUpdated,
        api.ComponentRemoved,
        registry.COMPONENT_FIELDS,
    ),
    _Table(
        "sensors", api.SensorDeclared, api.SensorUpdated, api.SensorRemoved, registry.SENSOR_FIELDS
    ),
)


class RegistryProjector:
    def __init__(self) -> None:
        self._by_type = {
            t: table for table in TABLES for t in (table.created, table.updated, table.deleted)
        }

    async def apply(self, conn: AsyncConnection, e: EventEnvelope) -> None:
        table = self._by_type.get(type(e.data))
        if table is None:
            return
        data = e.data
        key = {"org": e.org_id, "id": e.stream_id, "at": e.occurred_at, "v": e.version}
        if isinstance(data, table.created):
            cols = table.columns
            values = {c: _sql_value(c, getattr(data, c)) for c in cols}
            await conn.execute(
                text(
                    f"INSERT INTO {table.name} (org_id, id, {', '.join(cols)}, created_at,"
                    f" updated_at, version) VALUES (:org, :id,"
                    f" {', '.join(_placeholder(c) for c in cols)}, :at, :at, :v)"
                ),
                {**key, **values},
            )
        elif isinstance(data, table.updated):
            sets = ["updated_at = :at", "version = :v"]
            params: dict[str, Any] = dict(key)
            for api_name in getattr(data, "changed", ()):
                column = table.fields.get(api_name)
                if column is not None:
                    sets.append(f"{column} = {_placeholder(column)}")
                    params[column] = _sql_value(column, getattr(data, column))
            await conn.execute(
                text(f"UPDATE {table.name} SET {', '.join(sets)} WHERE org_id = :org AND id = :id"),
                params,
            )
        else:
            await conn.execute(
                text(f"DELETE FROM {table.name} WHERE org_id = :org AND id = :id"),
                {"org": e.org_id, "id": e.stream_id},
            )
