"""Read models of sensor profiles, device profiles and packs (ADR 0092): one row per live
aggregate, written in the transaction that appends its events (every event but a deletion
carries the whole state, so each is one upsert); the collections clients filter and order;
the queries the profile and pack use cases need. SQL lives here and only here."""

from __future__ import annotations

from collections.abc import Collection as Ids
from collections.abc import Mapping
from typing import Any
from uuid import UUID

import msgspec
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from outpost_contracts import fleet as api
from outpost_contracts.envelope import EventEnvelope
from outpost_contracts.query import ListQuery, Page
from outpost_fleet.domain import profiles
from outpost_kit.db.listing import Collection, Field, get_one, list_page
from outpost_kit.db.uow import UnitOfWork, UnitOfWorkFactory

_TIMES = {
    "createdAt": Field("created_at", "datetime"),
    "updatedAt": Field("updated_at", "datetime"),
}
_TAIL = "created_at, updated_at, version"

SENSOR_PROFILES = Collection(
    table="sensor_profiles",
    columns=f"id, name, unit, value_type, key, min, max, precision, display_name, {_TAIL}",
    fields={
        "id": Field("id", "uuid"),
        "name": Field("name"),
        "unit": Field("unit"),
        "valueType": Field("value_type"),
        "key": Field("key"),
        "min": Field("min", "float"),
        "max": Field("max", "float"),
        "precision": Field("precision", "int32"),
        "displayName": Field("display_name"),
        **_TIMES,
    },
)
DEVICE_PROFILES = Collection(
    table="device_profiles",
    columns=(
        "id, name, components, sensors, rule_templates, config_artefact_id,"
        f" expected_interval_seconds, firmware_family, description, {_TAIL}"
    ),
    fields={
        "id": Field("id", "uuid"),
        "name": Field("name"),
        "configArtefactId": Field("config_artefact_id", "uuid"),
        "expectedIntervalSeconds": Field("expected_interval_seconds", "int32"),
        "firmwareFamily": Field("firmware_family"),
        "description": Field("description"),
        **_TIMES,
    },
)
PACKS = Collection(
    table="packs",
    columns=f"id, name, pack_version, origin, items, conflicts, description, {_TAIL}",
    fields={
        "id": Field("id", "uuid"),
        "name": Field("name"),
        "packVersion": Field("pack_version"),
        "origin": Field("origin"),
        "description": Field("description"),
        **_TIMES,
    },
)


def _json(value: Any) -> Any:
    return msgspec.json.decode(value) if isinstance(value, (str, bytes)) else value


def _dump(value: Any) -> str:
    return msgspec.json.encode(value).decode()


def sensor_profile_view(row: Mapping[str, Any]) -> api.SensorProfileView:
    return api.SensorProfileView(
        id=row["id"],
        name=row["name"],
        unit=row["unit"],
        value_type=row["value_type"],
        key=row["key"],
        min=row["min"],
        max=row["max"],
        precision=row["precision"],
        display_name=row["display_name"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        version=row["version"],
    )


def device_profile_view(row: Mapping[str, Any]) -> api.DeviceProfileView:
    sensors = msgspec.convert(_json(row["sensors"]), list[api.ProfileSensor])
    implied = profiles.implied_rule_templates(
        profiles.DeviceProfile(
            id=row["id"],
            name=row["name"],
            sensors=tuple(
                profiles.ProfileSensor(key=s.key, sensor_profile_id=s.sensor_profile_id)
                for s in sensors
            ),
            expected_interval_seconds=row["expected_interval_seconds"],
        )
    )
    return api.DeviceProfileView(
        id=row["id"],
        name=row["name"],
        components=msgspec.convert(_json(row["components"]), list[api.ProfileComponent]),
        sensors=sensors,
        rule_templates=msgspec.convert(_json(row["rule_templates"]), list[api.RuleTemplate]),
        implied_rule_templates=implied,
        config_artefact_id=row["config_artefact_id"],
        expected_interval_seconds=row["expected_interval_seconds"],
        firmware_family=row["firmware_family"],
        description=row["description"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        version=row["version"],
    )


def pack_view(row: Mapping[str, Any]) -> api.PackView:
    return api.PackView(
        id=row["id"],
        name=row["name"],
        pack_version=row["pack_version"],
        origin=row["origin"],
        items=msgspec.convert(_json(row["items"]), list[api.PackItemView]),
        conflicts=list(_json(row["conflicts"])),
        description=row["description"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        version=row["version"],
    )


_UPSERT_SENSOR = (
    "INSERT INTO sensor_profiles (org_id, id, name, unit, value_type, key, min, max, precision,"
    " display_name, created_at, updated_at, version) VALUES (:org, :id, :name, :unit,"
    " :value_type, :key, :min, :max, :precision, :display_name, :at, :at, :v)"
    " ON CONFLICT (id) DO UPDATE SET name = excluded.name, unit = excluded.unit,"
    " value_type = excluded.value_type, key = excluded.key, min = excluded.min,"
    " max = excluded.max, precision = excluded.precision,"
    " display_name = excluded.display_name, updated_at = excluded.updated_at,"
    " version = excluded.version"
)
_UPSERT_DEVICE = (
    "INSERT INTO device_profiles (org_id, id, name, components, sensors, rule_templates,"
    " config_artefact_id, expected_interval_seconds, firmware_family, description,"
    " created_at, updated_at, version) VALUES (:org, :id, :name, CAST(:components AS jsonb),"
    " CAST(:sensors AS jsonb), CAST(:rule_templates AS jsonb), :artefact, :interval,"
    " :firmware_family, :description, :at, :at, :v)"
    " ON CONFLICT (id) DO UPDATE SET name = excluded.name, components = excluded.components,"
    " sensors = excluded.sensors, rule_templates = excluded.rule_templates,"
    " config_artefact_id = excluded.config_artefact_id,"
    " expected_interval_seconds = excluded.expected_interval_seconds,"
    " firmware_family = excluded.firmware_family, description = excluded.description,"
    " updated_at = excluded.updated_at, version = excluded.version"
)
_UPSERT_PACK = (
    "INSERT INTO packs (org_id, id, name, pack_version, origin, items, conflicts, description,"
    " created_at, updated_at, version) VALUES (:org, :id, :name, :pack_version, :origin,"
    " CAST(:items AS jsonb), CAST(:conflicts AS jsonb), :description, :at, :at, :v)"
    " ON CONFLICT (id) DO UPDATE SET name = excluded.name,"
    " pack_version = excluded.pack_version, items = excluded.items,"
    " conflicts = excluded.conflicts, description = excluded.description,"
    " updated_at = excluded.updated_at, version = excluded.version"
)
_DELETE = {
    api.SensorProfileDeleted: "DELETE FROM sensor_profiles WHERE org_id = :org AND id = :id",
    api.DeviceProfileDeleted: "DELETE FROM device_profiles WHERE org_id = :org AND id = :id",
    api.PackDeleted: "DELETE FROM packs WHERE org_id = :org AND id = :id",
}


class ProfileProjector:
    """Keeps ``sensor_profiles``, ``device_profiles`` and ``packs``."""

    async def apply(self, conn: AsyncConnection, e: EventEnvelope) -> None:
        data = e.data
        key = {"org": e.org_id, "id": e.stream_id, "at": e.occurred_at, "v": e.version}
        if isinstance(data, api.SensorProfileCreated | api.SensorProfileChanged):
            fields = ("name", "unit", "key", "min", "max", "precision", "display_name")
            await conn.execute(
                text(_UPSERT_SENSOR),
                {
                    **key,
                    **{f: getattr(data, f) for f in fields},
                    "value_type": str(data.value_type),
                },
            )
        elif isinstance(data, api.DeviceProfileCreated | api.DeviceProfileChanged):
            await conn.execute(
                text(_UPSERT_DEVICE),
                {
                    **key,
                    "name": data.name,
                    "components": _dump(data.components),
                    "sensors": _dump(data.sensors),
                    "rule_templates": _dump(data.rule_templates),
                    "artefact": data.config_artefact_id,
                    "interval": data.expected_interval_seconds,
                    "firmware_family": data.firmware_family,
                    "description": data.description,
                },
            )
        elif isinstance(data, api.PackCreated | api.PackChanged):
            items = [api.PackItemView(kind=r.kind, id=r.id) for r in data.items]
            await conn.execute(
                text(_UPSERT_PACK),
                {
                    **key,
                    "name": data.name,
                    "pack_version": data.pack_version,
                    "origin": str(api.PackOrigin.AUTHORED),
                    "items": _dump(items),
                    "conflicts": "[]",
                    "description": data.description,
                },
            )
        elif isinstance(data, api.PackInstalled):
            installed = [
                api.PackItemView(kind=i.kind, id=i.resource_id, key=i.key) for i in data.items
            ]
            await conn.execute(
                text(_UPSERT_PACK),
                {
                    **key,
                    "name": data.name,
                    "pack_version": data.pack_version,
                    "origin": str(api.PackOrigin.IMPORTED),
                    "items": _dump(installed),
                    "conflicts": _dump(data.conflicts),
                    "description": data.document.get("description"),
                },
            )
        elif type(data) in _DELETE:
            await conn.execute(text(_DELETE[type(data)]), {"org": e.org_id, "id": e.stream_id})


# --- the port (app/profile_ports.py) -----------------------------------------------------


class PgProfilesTx(UnitOfWork):
    """One transaction (the kit's ``UnitOfWork``) with the profile and pack use cases'
    statements."""

    async def __aenter__(self) -> PgProfilesTx:
        await super().__aenter__()
        return self

    async def sensor_profile(self, profile_id: UUID) -> api.SensorProfileView | None:
        row = await get_one(self.conn, SENSOR_PROFILES, profile_id)
        return None if row is None else sensor_profile_view(row)

    async def sensor_profiles(self, query: ListQuery) -> Page[api.SensorProfileView]:
        return await list_page(self.conn, SENSOR_PROFILES, query, sensor_profile_view)

    async def share_sensor_profiles(self, ids: Ids[UUID]) -> frozenset[UUID]:
        if not ids:
            return frozenset()
        sql = "SELECT id FROM sensor_profiles WHERE id = ANY(:ids) ORDER BY id FOR SHARE"
        return frozenset(row.id for row in await self.execute(sql, {"ids": list(ids)}))

    async def lock_sensor_profile(self, profile_id: UUID) -> None:
        await self.execute(
            "SELECT 1 FROM sensor_profiles WHERE id = :id FOR UPDATE", {"id": profile_id}
        )

    async def device_profiles_using(self, sensor_profile_id: UUID) -> list[UUID]:
        sql = "SELECT id FROM device_profiles WHERE sensors @> CAST(:probe AS jsonb) ORDER BY id"
        probe = _dump([{"sensorProfileId": str(sensor_profile_id)}])
        return [row.id for row in await self.execute(sql, {"probe": probe})]

    async def device_profile(self, profile_id: UUID) -> api.DeviceProfileView | None:
        row = await get_one(self.conn, DEVICE_PROFILES, profile_id)
        return None if row is None else device_profile_view(row)

    async def device_profiles(self, query: ListQuery) -> Page[api.DeviceProfileView]:
        return await list_page(self.conn, DEVICE_PROFILES, query, device_profile_view)

    async def devices_with_profile(self, profile_id: UUID) -> int:
        """Fleet's device read model is built by the profile-change work (ADR 0093); until
        its table exists there is no device to count (``to_regclass``), so a delete is not
        refused. Devices itself keeps a device whose profile is gone as it is."""
        exists = (
            await self.execute("SELECT to_regclass('fleet_devices') IS NOT NULL")
        ).scalar_one()
        if not exists:
            return 0
        sql = "SELECT count(*) FROM fleet_devices WHERE profile_id = :id AND NOT decommissioned"
        return int((await self.execute(sql, {"id": profile_id})).scalar_one())

    async def artefact_uses(self, artefact_id: UUID) -> tuple[str, ...]:
        sql = (
            "SELECT 'binding ' || id AS use FROM desired_state_bindings WHERE artefact_id = :id"
            " UNION ALL SELECT 'device profile ' || id FROM device_profiles"
            " WHERE config_artefact_id = :id ORDER BY 1"
        )
        return tuple(row.use for row in await self.execute(sql, {"id": artefact_id}))

    async def pack(self, pack_id: UUID) -> api.PackView | None:
        row = await get_one(self.conn, PACKS, pack_id)
        return None if row is None else pack_view(row)

    async def packs(self, query: ListQuery) -> Page[api.PackView]:
        return await list_page(self.conn, PACKS, query, pack_view)

    async def pack_named(self, name: str) -> UUID | None:
        sql = "SELECT id FROM packs WHERE name = :name FOR UPDATE"
        row = (await self.execute(sql, {"name": name})).first()
        return None if row is None else row.id


class PgProfiles(UnitOfWorkFactory):
    """The ``ProfilesUnitOfWork`` bootstrap hands to the use cases (``PgProfiles.over(uow)``)."""

    def __call__(self, org_id: UUID | None) -> PgProfilesTx:
        return PgProfilesTx(self.engine, self.codec, org_id=org_id, projectors=self.projectors)
