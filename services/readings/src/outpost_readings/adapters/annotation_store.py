"""Read models of annotation classes, annotations and an organization's readings settings:
one row per live aggregate, written in the transaction that appends its events (deleting
the aggregate deletes the row); the collections clients filter and order; the queries the
use cases need."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

import msgspec
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from outpost_contracts import annotations as api
from outpost_contracts.devices import Tag
from outpost_contracts.envelope import EventEnvelope
from outpost_contracts.query import ListQuery, Page
from outpost_kit.db.listing import Collection, Field, Relation, get_one, list_page
from outpost_kit.db.uow import UnitOfWork, UnitOfWorkFactory
from outpost_readings.app.ports import SettingsRow, Window

_TIMES = {
    "createdAt": Field("created_at", "datetime"),
    "updatedAt": Field("updated_at", "datetime"),
}
_TAIL = "created_at, updated_at, version"

ANNOTATION_CLASSES = Collection(
    table="annotation_classes",
    columns=f"id, name, colour, description, {_TAIL}",
    fields={
        "id": Field("id", "uuid"),
        "name": Field("name"),
        "colour": Field("colour"),
        "description": Field("description"),
        **_TIMES,
    },
)
ANNOTATIONS = Collection(
    table="annotations",
    columns=f"id, device_id, class_id, sensor, from_ts, to_ts, text, tags, {_TAIL}",
    fields={
        "id": Field("id", "uuid"),
        "deviceId": Field("device_id", "uuid"),
        "classId": Field("class_id", "uuid"),
        "sensor": Field("sensor"),
        "from": Field("from_ts", "datetime"),
        "to": Field("to_ts", "datetime"),
        "text": Field("text"),
        **_TIMES,
    },
    relations={"tags": Relation("tags", {"key": "text", "value": "text"})},
)


def _json(value: Any) -> Any:
    return msgspec.json.decode(value) if isinstance(value, (str, bytes)) else value


def class_view(row: Mapping[str, Any]) -> api.AnnotationClassView:
    return api.AnnotationClassView(
        id=row["id"],
        name=row["name"],
        colour=row["colour"],
        description=row["description"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        version=row["version"],
    )


def annotation_view(row: Mapping[str, Any]) -> api.AnnotationView:
    return api.AnnotationView(
        id=row["id"],
        device_id=row["device_id"],
        class_id=row["class_id"],
        sensor=row["sensor"],
        from_=row["from_ts"],
        to=row["to_ts"],
        text=row["text"],
        tags=msgspec.convert(_json(row["tags"]), list[Tag]),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        version=row["version"],
    )


# Annotations overlapping ``[:w_from, :w_to)``: the annotation's range ``[from, to]`` (both
# ends in: an instant annotation has from = to) meets the window.
OVERLAP_FROM = "to_ts >= :w_from"
OVERLAP_TO = "from_ts < :w_to"

_ANNOTATION_COLUMNS = {
    "device_id": "device_id",
    "class_id": "class_id",
    "sensor": "sensor",
    "from_": "from_ts",
    "to": "to_ts",
    "text": "text",
    "tags": "tags",
}
_CLASS_COLUMNS = ("name", "colour", "description")


def _tags(value: Any) -> str:
    return msgspec.json.encode(list(value or [])).decode()


class AnnotationsProjector:
    """Keeps ``annotation_classes``, ``annotations`` and ``org_settings`` (the settings'
    projection, which ingest reads to decide auto-declare)."""

    async def apply(self, conn: AsyncConnection, e: EventEnvelope) -> None:
        data = e.data
        key = {"org": e.org_id, "id": e.stream_id, "at": e.occurred_at, "v": e.version}
        if isinstance(data, api.AnnotationClassCreated):
            await conn.execute(
                text(
                    "INSERT INTO annotation_classes (org_id, id, name, colour, description,"
                    " created_at, updated_at, version)"
                    " VALUES (:org, :id, :name, :colour, :description, :at, :at, :v)"
                ),
                {**key, "name": data.name, "colour": data.colour, "description": data.description},
            )
        elif isinstance(data, api.AnnotationClassUpdated):
            sets = [f"{c} = :{c}" for c in _CLASS_COLUMNS if c in data.changed]
            await conn.execute(
                text(
                    f"UPDATE annotation_classes SET {', '.join([*sets, 'updated_at = :at'])},"
                    " version = :v WHERE org_id = :org AND id = :id"
                ),
                {**key, **{c: getattr(data, c) for c in _CLASS_COLUMNS if c in data.changed}},
            )
        elif isinstance(data, api.AnnotationClassDeleted):
            await conn.execute(
                text("DELETE FROM annotation_classes WHERE org_id = :org AND id = :id"),
                {"org": e.org_id, "id": e.stream_id},
            )
        elif isinstance(data, api.AnnotationCreated):
            await conn.execute(
                text(
                    "INSERT INTO annotations (org_id, id, device_id, class_id, sensor, from_ts,"
                    " to_ts, text, tags, created_at, updated_at, version) VALUES (:org, :id,"
                    " :device_id, :class_id, :sensor, :from_ts, :to_ts, :text,"
                    " CAST(:tags AS jsonb), :at, :at, :v)"
                ),
                {
                    **key,
                    "device_id": data.device_id,
                    "class_id": data.class_id,
                    "sensor": data.sensor,
                    "from_ts": data.from_,
                    "to_ts": data.to,
                    "text": data.text,
                    "tags": _tags(data.tags),
                },
            )
        elif isinstance(data, api.AnnotationUpdated):
            sets = ["updated_at = :at", "version = :v"]
            params: dict[str, Any] = dict(key)
            for attr, column in _ANNOTATION_COLUMNS.items():
                api_name = {"class_id": "classId", "from_": "from"}.get(attr, attr)
                if api_name not in data.changed:
                    continue
                if column == "tags":
                    sets.append("tags = CAST(:tags AS jsonb)")
                    params["tags"] = _tags(data.tags)
                else:
                    sets.append(f"{column} = :{column}")
                    params[column] = getattr(data, attr)
            await conn.execute(
                text(f"UPDATE annotations SET {', '.join(sets)} WHERE org_id = :org AND id = :id"),
                params,
            )
        elif isinstance(data, api.AnnotationDeleted):
            await conn.execute(
                text("DELETE FROM annotations WHERE org_id = :org AND id = :id"),
                {"org": e.org_id, "id": e.stream_id},
            )
        elif isinstance(data, api.ReadingsSettingsChanged):
            await conn.execute(
                text(
                    "INSERT INTO org_settings (org_id, auto_declare_sensors, retention_days,"
                    " version, updated_at) VALUES (:org, :auto, :days, :v, :at)"
                    " ON CONFLICT (org_id) DO UPDATE SET"
                    " auto_declare_sensors = excluded.auto_declare_sensors,"
                    " retention_days = excluded.retention_days, version = excluded.version,"
                    " updated_at = excluded.updated_at"
                ),
                {
                    "org": e.org_id,
                    "auto": data.auto_declare_sensors,
                    "days": data.retention_days,
                    "v": e.version,
                    "at": e.occurred_at,
                },
            )


# --- the port (app/ports.py) -------------------------------------------------------------


class PgAnnotationsTx(UnitOfWork):
    """One transaction (the kit's ``UnitOfWork``) with the annotation use cases' statements."""

    async def __aenter__(self) -> PgAnnotationsTx:
        await super().__aenter__()
        return self

    async def _one(self, collection: Collection, key: UUID) -> Mapping[str, Any] | None:
        return await get_one(self.conn, collection, key)

    async def annotation_class(self, class_id: UUID) -> api.AnnotationClassView | None:
        row = await self._one(ANNOTATION_CLASSES, class_id)
        return None if row is None else class_view(row)

    async def classes(self, query: ListQuery) -> Page[api.AnnotationClassView]:
        return await list_page(self.conn, ANNOTATION_CLASSES, query, class_view)

    async def class_name_taken(self, name: str, own_id: UUID | None) -> bool:
        sql = "SELECT 1 FROM annotation_classes WHERE name = :n AND id IS DISTINCT FROM :id"
        return (await self.execute(sql, {"n": name, "id": own_id})).first() is not None

    async def lock_class(self, class_id: UUID, *, exclusive: bool) -> bool:
        mode = "UPDATE" if exclusive else "SHARE"
        sql = f"SELECT 1 FROM annotation_classes WHERE id = :id FOR {mode}"
        return (await self.execute(sql, {"id": class_id})).first() is not None

    async def annotations_of_class(self, class_id: UUID) -> int:
        sql = "SELECT count(*) FROM annotations WHERE class_id = :id"
        return int((await self.execute(sql, {"id": class_id})).scalar_one())

    async def device_in_registry(self, device_id: UUID) -> bool:
        sql = "SELECT 1 FROM devices WHERE id = :id"
        return (await self.execute(sql, {"id": device_id})).first() is not None

    async def annotation(self, annotation_id: UUID) -> api.AnnotationView | None:
        row = await self._one(ANNOTATIONS, annotation_id)
        return None if row is None else annotation_view(row)

    async def annotations(self, query: ListQuery, window: Window) -> Page[api.AnnotationView]:
        where: list[str] = []
        params: dict[str, Any] = {}
        if window.device_id is not None:
            where.append("device_id = :w_device")
            params["w_device"] = window.device_id
        if window.start is not None:
            where.append(OVERLAP_FROM)
            params["w_from"] = window.start
        if window.end is not None:
            where.append(OVERLAP_TO)
            params["w_to"] = window.end
        return await list_page(
            self.conn,
            ANNOTATIONS,
            query,
            annotation_view,
            extra_where=" AND ".join(where) or "TRUE",
            extra_params=params,
        )

    async def annotations_of_devices(
        self,
        device_ids: Sequence[UUID],
        start: datetime,
        end: datetime,
        after: UUID | None,
        limit: int,
    ) -> list[api.AnnotationView]:
        clauses = ["device_id = ANY(:devices)", OVERLAP_FROM, OVERLAP_TO]
        params: dict[str, Any] = {
            "devices": list(device_ids),
            "w_from": start,
            "w_to": end,
            "n": limit,
        }
        if after is not None:
            clauses.append("id > :after")
            params["after"] = after
        sql = (
            f"SELECT {ANNOTATIONS.columns} FROM annotations WHERE {' AND '.join(clauses)}"
            " ORDER BY id LIMIT :n"
        )
        return [annotation_view(row._mapping) for row in await self.execute(sql, params)]

    async def settings(self) -> SettingsRow | None:
        sql = "SELECT auto_declare_sensors, retention_days, version, updated_at FROM org_settings"
        row = (await self.execute(sql)).first()
        if row is None:
            return None
        return SettingsRow(
            auto_declare_sensors=bool(row.auto_declare_sensors),
            retention_days=None if row.retention_days is None else int(row.retention_days),
            version=int(row.version),
            updated_at=row.updated_at,
        )


class PgAnnotations(UnitOfWorkFactory):
    """The ``AnnotationsUnitOfWork`` bootstrap hands to the use cases: the kit's factory,
    whose units of work carry the annotations' statements (``PgAnnotations.over(uow)``)."""

    def __call__(self, org_id: UUID | None) -> PgAnnotationsTx:
        return PgAnnotationsTx(self.engine, self.codec, org_id=org_id, projectors=self.projectors)
