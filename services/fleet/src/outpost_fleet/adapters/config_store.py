"""Read models of config artefacts, their versions and desired-state bindings: one row per
live aggregate (and per live version), written in the transaction that appends its events;
the queries the use cases need. SQL lives here and only here."""

from __future__ import annotations

from uuid import UUID

import msgspec
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from outpost_contracts import fleet as api
from outpost_contracts.envelope import EventEnvelope
from outpost_kit.db.uow import UnitOfWork, UnitOfWorkFactory


def _json(value: object) -> str | None:
    return None if value is None else msgspec.json.encode(value).decode()


class ConfigProjector:
    """Keeps ``config_artefacts``, ``config_artefact_versions`` and
    ``desired_state_bindings``."""

    async def apply(self, conn: AsyncConnection, e: EventEnvelope) -> None:
        data = e.data
        key = {"org": e.org_id, "id": e.stream_id, "at": e.occurred_at, "v": e.version}
        if isinstance(data, api.ConfigArtefactCreated):
            await conn.execute(
                text(
                    "INSERT INTO config_artefacts (org_id, id, name, latest_version, created_at,"
                    " updated_at, version) VALUES (:org, :id, :name, 0, :at, :at, :v)"
                ),
                {**key, "name": data.name},
            )
        elif isinstance(data, api.ConfigArtefactVersionPublished):
            await conn.execute(
                text(
                    "INSERT INTO config_artefact_versions (org_id, artefact_id, version,"
                    " document, schema, created_at) VALUES (:org, :id, :n,"
                    " CAST(:document AS jsonb), CAST(:schema AS jsonb), :at)"
                ),
                {
                    **key,
                    "n": data.version,
                    "document": _json(data.document),
                    "schema": _json(data.schema),
                },
            )
            await conn.execute(
                text(
                    "UPDATE config_artefacts SET latest_version = :n, updated_at = :at,"
                    " version = :v WHERE org_id = :org AND id = :id"
                ),
                {**key, "n": data.version},
            )
        elif isinstance(data, api.ConfigArtefactVersionDeleted):
            await conn.execute(
                text(
                    "DELETE FROM config_artefact_versions WHERE org_id = :org"
                    " AND artefact_id = :id AND version = :n"
                ),
                {"org": e.org_id, "id": e.stream_id, "n": data.version},
            )
            await conn.execute(
                text(
                    "UPDATE config_artefacts SET latest_version = (SELECT max(version)"
                    " FROM config_artefact_versions WHERE artefact_id = :id), updated_at = :at,"
                    " version = :v WHERE org_id = :org AND id = :id"
                ),
                key,
            )
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


class PgConfigTx(UnitOfWork):
    """One transaction (the kit's ``UnitOfWork``) with the config use cases' statements."""

    async def __aenter__(self) -> PgConfigTx:
        await super().__aenter__()
        return self


class PgConfig(UnitOfWorkFactory):
    """The ``ConfigUnitOfWork`` bootstrap hands to the use cases (``PgConfig.over(uow)``)."""

    def __call__(self, org_id: UUID | None) -> PgConfigTx:
        return PgConfigTx(self.engine, self.codec, org_id=org_id, projectors=self.projectors)
