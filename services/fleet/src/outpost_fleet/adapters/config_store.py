"""Read models of config artefacts, their versions and desired-state bindings: one row per
live aggregate (and per live version), written in the transaction that appends its events
(deleting the aggregate deletes its rows); the collections clients filter and order; the
queries the use cases need. SQL lives here and only here."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from uuid import UUID

import msgspec
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from outpost_contracts import fleet as api
from outpost_contracts.envelope import EventEnvelope
from outpost_contracts.query import ListQuery, Page
from outpost_kit.db.listing import Collection, Field, get_one, list_page
from outpost_kit.db.uow import UnitOfWork, UnitOfWorkFactory

_TIMES = {
    "createdAt": Field("created_at", "datetime"),
    "updatedAt": Field("updated_at", "datetime"),
}

CONFIG_ARTEFACTS = Collection(
    table="config_artefacts",
    columns="id, name, latest_version, version_count, created_at, updated_at",
    fields={
        "id": Field("id", "uuid"),
        "name": Field("name"),
        "version": Field("latest_version", "int32"),
        "versionCount": Field("version_count", "int32"),
        **_TIMES,
    },
)
# One artefact's versions: the use case narrows it to the artefact (``extra_where``) and
# pages by version number (``after`` is a version number, not an id).
ARTEFACT_VERSIONS = Collection(
    table="config_artefact_versions",
    columns="artefact_id, version, size_bytes, created_at",
    fields={
        "version": Field("version", "int32"),
        "sizeBytes": Field("size_bytes", "int32"),
        "createdAt": Field("created_at", "datetime"),
    },
    id_column="version",
)
_TARGET_TYPE = Field("target_type", ops=frozenset({"eq", "ne", "in"}))
_TARGET_ID = Field("target_id", "uuid")
BINDINGS = Collection(
    table="desired_state_bindings",
    columns=(
        "id, artefact_id, artefact_version, target_type, target_id, priority, created_at,"
        " updated_at, version"
    ),
    fields={
        "id": Field("id", "uuid"),
        "artefactId": Field("artefact_id", "uuid"),
        "artefactVersion": Field("artefact_version", "int32"),
        # ``target.type=GROUP`` (field filters) and ``targetType eq 'GROUP'`` (OData)
        "target.type": _TARGET_TYPE,
        "target.id": _TARGET_ID,
        "targetType": _TARGET_TYPE,
        "targetId": _TARGET_ID,
        "priority": Field("priority", "int32"),
        **_TIMES,
    },
)


def _json(value: Any) -> Any:
    return msgspec.json.decode(value) if isinstance(value, (str, bytes)) else value


def _encoded(value: object) -> str | None:
    return None if value is None else msgspec.json.encode(value).decode()


def artefact_view(row: Mapping[str, Any]) -> api.ConfigArtefactView:
    """An artefact as a list shows it (no document)."""
    return api.ConfigArtefactView(
        id=row["id"],
        name=row["name"],
        version=row["latest_version"],
        version_count=row["version_count"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def version_view(row: Mapping[str, Any]) -> api.ConfigArtefactVersionView:
    """A version as a list shows it (no document)."""
    return api.ConfigArtefactVersionView(
        artefact_id=row["artefact_id"],
        version=row["version"],
        size_bytes=row["size_bytes"],
        created_at=row["created_at"],
    )


def binding_view(row: Mapping[str, Any]) -> api.DesiredStateBindingView:
    n = row["artefact_version"]
    return api.DesiredStateBindingView(
        id=row["id"],
        artefact_id=row["artefact_id"],
        artefact_version=api.LATEST if n is None else n,
        target=api.Target(type=api.TargetType(row["target_type"]), id=row["target_id"]),
        priority=row["priority"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        version=row["version"],
    )


class ConfigProjector:
    """Keeps ``config_artefacts``, ``config_artefact_versions`` and
    ``desired_state_bindings``."""

    async def apply(self, conn: AsyncConnection, e: EventEnvelope) -> None:
        data = e.data
        key = {"org": e.org_id, "id": e.stream_id, "at": e.occurred_at, "v": e.version}
        if isinstance(data, api.ConfigArtefactCreated):
            await conn.execute(
                text(
                    "INSERT INTO config_artefacts (org_id, id, name, latest_version,"
                    " version_count, created_at, updated_at, version)"
                    " VALUES (:org, :id, :name, 0, 0, :at, :at, :v)"
                ),
                {**key, "name": data.name},
            )
        elif isinstance(data, api.ConfigArtefactVersionPublished):
            document = _encoded(data.document)
            await conn.execute(
                text(
                    "INSERT INTO config_artefact_versions (org_id, artefact_id, version,"
                    " document, schema, size_bytes, created_at) VALUES (:org, :id, :n,"
                    " CAST(:document AS jsonb), CAST(:schema AS jsonb), :size, :at)"
                ),
                {
                    **key,
                    "n": data.version,
                    "document": document,
                    "schema": _encoded(data.schema),
                    "size": len((document or "").encode()),
                },
            )
            await self._counts(conn, key)
        elif isinstance(data, api.ConfigArtefactVersionDeleted):
            await conn.execute(
                text(
                    "DELETE FROM config_artefact_versions WHERE org_id = :org"
                    " AND artefact_id = :id AND version = :n"
                ),
                {"org": e.org_id, "id": e.stream_id, "n": data.version},
            )
            await self._counts(conn, key)
        elif isinstance(data, api.ConfigArtefactDeleted):
            for sql in (
                "DELETE FROM config_artefact_versions WHERE org_id = :org AND artefact_id = :id",
                "DELETE FROM config_artefacts WHERE org_id = :org AND id = :id",
            ):
                await conn.execute(text(sql), {"org": e.org_id, "id": e.stream_id})
        elif isinstance(data, api.DesiredStateBindingCreated):
            await conn.execute(
                text(
                    "INSERT INTO desired_state_bindings (org_id, id, artefact_id,"
                    " artefact_version, target_type, target_id, priority, created_at,"
                    " updated_at, version) VALUES (:org, :id, :artefact, :n, :type, :target,"
                    " :priority, :at, :at, :v)"
                ),
                {
                    **key,
                    "artefact": data.artefact_id,
                    "n": data.artefact_version,
                    "type": str(data.target.type),
                    "target": data.target.id,
                    "priority": data.priority,
                },
            )
        elif isinstance(data, api.DesiredStateBindingChanged):
            await conn.execute(
                text(
                    "UPDATE desired_state_bindings SET artefact_version = :n,"
                    " priority = :priority, updated_at = :at, version = :v"
                    " WHERE org_id = :org AND id = :id"
                ),
                {**key, "n": data.artefact_version, "priority": data.priority},
            )
        elif isinstance(data, api.DesiredStateBindingRemoved):
            await conn.execute(
                text("DELETE FROM desired_state_bindings WHERE org_id = :org AND id = :id"),
                {"org": e.org_id, "id": e.stream_id},
            )

    @staticmethod
    async def _counts(conn: AsyncConnection, key: Mapping[str, Any]) -> None:
        """The artefact's latest version and count of live versions, after a change."""
        await conn.execute(
            text(
                "UPDATE config_artefacts a SET latest_version = v.latest,"
                " version_count = v.n, updated_at = :at, version = :v"
                " FROM (SELECT coalesce(max(version), 0) AS latest, count(*) AS n"
                " FROM config_artefact_versions WHERE org_id = :org AND artefact_id = :id) v"
                " WHERE a.org_id = :org AND a.id = :id"
            ),
            key,
        )


# --- the port (app/ports.py) -------------------------------------------------------------


class PgConfigTx(UnitOfWork):
    """One transaction (the kit's ``UnitOfWork``) with the config use cases' statements."""

    async def __aenter__(self) -> PgConfigTx:
        await super().__aenter__()
        return self

    async def artefact(self, artefact_id: UUID) -> api.ConfigArtefactView | None:
        sql = (
            f"SELECT a.{CONFIG_ARTEFACTS.columns.replace(', ', ', a.')}, v.document, v.schema"
            " FROM config_artefacts a JOIN config_artefact_versions v"
            " ON v.artefact_id = a.id AND v.version = a.latest_version WHERE a.id = :id"
        )
        row = (await self.execute(sql, {"id": artefact_id})).first()
        if row is None:
            return None
        m = row._mapping
        return msgspec.structs.replace(
            artefact_view(m), document=_json(m["document"]), schema=_json(m["schema"])
        )

    async def artefacts(self, query: ListQuery) -> Page[api.ConfigArtefactView]:
        return await list_page(self.conn, CONFIG_ARTEFACTS, query, artefact_view)

    async def name_taken(self, name: str) -> bool:
        sql = "SELECT 1 FROM config_artefacts WHERE name = :n"
        return (await self.execute(sql, {"n": name})).first() is not None

    async def lock_artefact(self, artefact_id: UUID, *, exclusive: bool) -> bool:
        mode = "UPDATE" if exclusive else "SHARE"
        sql = f"SELECT 1 FROM config_artefacts WHERE id = :id FOR {mode}"
        return (await self.execute(sql, {"id": artefact_id})).first() is not None

    async def version(self, artefact_id: UUID, number: int) -> api.ConfigArtefactVersionView | None:
        sql = (
            f"SELECT {ARTEFACT_VERSIONS.columns}, document, schema FROM config_artefact_versions"
            " WHERE artefact_id = :id AND version = :n"
        )
        row = (await self.execute(sql, {"id": artefact_id, "n": number})).first()
        if row is None:
            return None
        m = row._mapping
        return msgspec.structs.replace(
            version_view(m), document=_json(m["document"]), schema=_json(m["schema"])
        )

    async def versions(
        self, artefact_id: UUID, query: ListQuery, after: int | None
    ) -> Page[api.ConfigArtefactVersionView]:
        where = ["artefact_id = :_artefact"]
        params: dict[str, Any] = {"_artefact": artefact_id}
        if after is not None:
            descending = any(o.field == "version" and o.desc for o in query.order_by) or (
                not query.order_by and query.order == "DESC"
            )
            where.append(f"version {'<' if descending else '>'} :_after_version")
            params["_after_version"] = after
        return await list_page(
            self.conn,
            ARTEFACT_VERSIONS,
            query,
            version_view,
            extra_where=" AND ".join(where),
            extra_params=params,
        )

    async def uses(self, artefact_id: UUID, version: int | None, *, latest: bool) -> list[str]:
        """What uses the artefact (``version`` None) or one of its versions: the bindings
        that pin it, and when it is the latest, the bindings that follow "latest" and the
        device profiles that name the artefact (a profile's configuration is its latest)."""
        bindings = (
            "SELECT 'binding ' || id AS use FROM desired_state_bindings WHERE artefact_id = :id"
        )
        profiles = (
            "SELECT 'device profile ' || id FROM device_profiles"
            " WHERE config_artefact_id = :id AND :latest"
        )
        if version is not None:
            bindings += " AND (artefact_version = :n OR (:latest AND artefact_version IS NULL))"
        sql = f"{bindings} UNION ALL {profiles} ORDER BY 1"
        params = {"id": artefact_id, "n": version, "latest": latest or version is None}
        return [row.use for row in await self.execute(sql, params)]

    async def profile_exists(self, profile_id: UUID) -> bool:
        sql = "SELECT 1 FROM device_profiles WHERE id = :id"
        return (await self.execute(sql, {"id": profile_id})).first() is not None

    async def binding(self, binding_id: UUID) -> api.DesiredStateBindingView | None:
        row = await get_one(self.conn, BINDINGS, binding_id)
        return None if row is None else binding_view(row)

    async def bindings(self, query: ListQuery) -> Page[api.DesiredStateBindingView]:
        return await list_page(self.conn, BINDINGS, query, binding_view)


class PgConfig(UnitOfWorkFactory):
    """The ``ConfigUnitOfWork`` bootstrap hands to the use cases (``PgConfig.over(uow)``)."""

    def __call__(self, org_id: UUID | None) -> PgConfigTx:
        return PgConfigTx(self.engine, self.codec, org_id=org_id, projectors=self.projectors)
