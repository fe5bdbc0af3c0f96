"""Notification channels in SQL: the read model of their streams (updated in the transaction
that appends their events; a deleted channel's row is deleted), the collection's allowlist,
and the sealed secrets beside them."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any
from uuid import UUID

import msgspec
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from outpost_contracts import notifications as api
from outpost_contracts.envelope import EventEnvelope
from outpost_kit.db.listing import Collection, Field

CHANNELS = Collection(
    table="notification_channels",
    columns=(
        "id, type, name, enabled, url, addresses::text AS addresses, has_secret, created_at,"
        " updated_at, version"
    ),
    fields={
        "id": Field("id", "uuid"),
        "type": Field("type", ops=frozenset({"eq", "ne", "in", "nin"})),
        "name": Field("name"),
        "enabled": Field("enabled", "bool"),
        "url": Field("url"),
        "createdAt": Field("created_at", "datetime"),
        "updatedAt": Field("updated_at", "datetime"),
    },
)
SELECT_CHANNEL = f"SELECT {CHANNELS.columns} FROM {CHANNELS.table} WHERE id = $1"


def channel_view(row: Mapping[str, Any]) -> api.NotificationChannelView:
    addresses = row["addresses"]
    return api.NotificationChannelView(
        id=row["id"],
        type=api.ChannelType(row["type"]),
        name=row["name"],
        enabled=row["enabled"],
        url=row["url"],
        addresses=None if addresses is None else msgspec.json.decode(addresses, type=list[str]),
        has_secret=row["has_secret"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        version=row["version"],
    )


def _addresses(value: list[str] | None) -> str | None:
    return None if value is None else msgspec.json.encode(value).decode()


class ChannelsProjector:
    async def apply(self, conn: AsyncConnection, e: EventEnvelope) -> None:
        data = e.data
        key = {"org": e.org_id, "id": e.stream_id, "at": e.occurred_at, "v": e.version}
        if isinstance(data, api.NotificationChannelCreated):
            await conn.execute(
                text(
                    "INSERT INTO notification_channels (org_id, id, type, name, enabled, url,"
                    " addresses, has_secret, created_at, updated_at, version) VALUES (:org, :id,"
                    " :type, :name, :enabled, :url, CAST(:addresses AS jsonb), :has_secret, :at,"
                    " :at, :v)"
                ),
                {
                    **key,
                    "type": data.channel_type.value,
                    "name": data.name,
                    "enabled": data.enabled,
                    "url": data.url,
                    "addresses": _addresses(data.addresses),
                    "has_secret": data.has_secret,
                },
            )
        elif isinstance(data, api.NotificationChannelUpdated):
            sets = ["updated_at = :at", "version = :v"]
            params: dict[str, Any] = dict(key)
            for name in data.changed:
                if name == "addresses":
                    sets.append("addresses = CAST(:addresses AS jsonb)")
                    params["addresses"] = _addresses(data.addresses)
                elif name == "secret":
                    sets.append("has_secret = true")
                elif name in ("name", "url", "enabled"):
                    sets.append(f"{name} = :{name}")
                    params[name] = getattr(data, name)
            await conn.execute(
                text(
                    f"UPDATE notification_channels SET {', '.join(sets)}"
                    " WHERE org_id = :org AND id = :id"
                ),
                params,
            )
        elif isinstance(data, api.NotificationChannelDeleted):
            await conn.execute(
                text("DELETE FROM notification_channels WHERE org_id = :org AND id = :id"),
                {"org": e.org_id, "id": e.stream_id},
            )
            await conn.execute(
                text("DELETE FROM channel_secrets WHERE org_id = :org AND channel_id = :id"),
                {"org": e.org_id, "id": e.stream_id},
            )


async def save_secret(
    conn: AsyncConnection, org_id: UUID, channel_id: UUID, sealed: bytes, at: datetime
) -> None:
    await conn.execute(
        text(
            "INSERT INTO channel_secrets (org_id, channel_id, sealed, updated_at)"
            " VALUES (:org, :id, :sealed, :at) ON CONFLICT (org_id, channel_id)"
            " DO UPDATE SET sealed = excluded.sealed, updated_at = excluded.updated_at"
        ),
        {"org": org_id, "id": channel_id, "sealed": sealed, "at": at},
    )


async def load_secret(conn: AsyncConnection, channel_id: UUID) -> bytes | None:
    row = (
        await conn.execute(
            text("SELECT sealed FROM channel_secrets WHERE channel_id = :id"), {"id": channel_id}
        )
    ).first()
    return None if row is None else bytes(row.sealed)


async def load_channel(
    conn: AsyncConnection, channel_id: UUID
) -> api.NotificationChannelView | None:
    row = (
        await conn.execute(
            text(f"SELECT {CHANNELS.columns} FROM {CHANNELS.table} WHERE id = :id"),
            {"id": channel_id},
        )
    ).first()
    return None if row is None else channel_view(dict(row._mapping))
