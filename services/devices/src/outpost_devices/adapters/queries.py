"""The devices collection: filterable fields and the row → view mapping."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec

from outpost_contracts.devices import DeviceStatus, DeviceView, Tag
from outpost_contracts.provisioning import CertificateView, RegistrationTokenView, TokenStatus
from outpost_kit.db.listing import Collection, Field, Relation

DEVICES = Collection(
    table="devices",
    columns=(
        "id, name, status, device_type, site_id, group_id, tags, attributes, created_at,"
        " updated_at, version, online, last_seen_at, last_connected_at, last_disconnected_at,"
        " profile_id"
    ),
    fields={
        "id": Field("id", "uuid"),
        "name": Field("name"),
        "status": Field("status", ops=frozenset({"eq", "ne", "in", "nin"})),
        "deviceType": Field("device_type"),
        "siteId": Field("site_id", "uuid"),
        "groupId": Field("group_id", "uuid"),
        "profileId": Field("profile_id", "uuid"),
        "createdAt": Field("created_at", "datetime"),
        "updatedAt": Field("updated_at", "datetime"),
        # presence (decision 55)
        "online": Field("online", "bool"),
        "lastSeenAt": Field("last_seen_at", "datetime"),
        "lastConnectedAt": Field("last_connected_at", "datetime"),
        "lastDisconnectedAt": Field("last_disconnected_at", "datetime"),
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
        profile_id=row["profile_id"],
        tags=msgspec.convert(_json(row["tags"]), list[Tag]),
        attributes=_json(row["attributes"]),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        version=row["version"],
        online=row["online"],
        last_seen_at=row["last_seen_at"],
        last_connected_at=row["last_connected_at"],
        last_disconnected_at=row["last_disconnected_at"],
    )


# --- provisioning -------------------------------------------------------------------------

REGISTRATION_TOKENS = Collection(
    table="registration_tokens",
    columns=(
        "id, device_id, device_name, created_at, expires_at, used_at, revoked_at,"
        " CASE WHEN used_at IS NOT NULL THEN 'USED' WHEN revoked_at IS NOT NULL THEN 'REVOKED'"
        " WHEN expires_at <= now() THEN 'EXPIRED' ELSE 'ACTIVE' END AS status"
    ),
    fields={
        "id": Field("id", "uuid"),
        "deviceId": Field("device_id", "uuid"),
        "deviceName": Field("device_name"),
        "createdAt": Field("created_at", "datetime"),
        "expiresAt": Field("expires_at", "datetime"),
        "usedAt": Field("used_at", "datetime"),
        "revokedAt": Field("revoked_at", "datetime"),
    },
)


def registration_token_view(row: Mapping[str, Any]) -> RegistrationTokenView:
    return RegistrationTokenView(
        id=row["id"],
        device_id=row["device_id"],
        device_name=row["device_name"],
        status=TokenStatus(row["status"]),
        created_at=row["created_at"],
        expires_at=row["expires_at"],
        used_at=row["used_at"],
        revoked_at=row["revoked_at"],
    )


CERTIFICATES = Collection(
    table="device_certificates",
    columns="id, serial, device_id, not_before, not_after, created_at, revoked_at",
    fields={
        "id": Field("id", "uuid"),
        "serial": Field("serial"),
        "notBefore": Field("not_before", "datetime"),
        "notAfter": Field("not_after", "datetime"),
        "createdAt": Field("created_at", "datetime"),
        "revokedAt": Field("revoked_at", "datetime"),
    },
)


def certificate_view(row: Mapping[str, Any]) -> CertificateView:
    return CertificateView(
        id=row["id"],
        serial=row["serial"],
        device_id=row["device_id"],
        not_before=row["not_before"],
        not_after=row["not_after"],
        created_at=row["created_at"],
        revoked_at=row["revoked_at"],
    )
