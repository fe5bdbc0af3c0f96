"""The device registry read model, updated in the transaction that appends the events."""

from __future__ import annotations

import msgspec
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from outpost_contracts.devices import (
    DeviceActivated,
    DeviceDecommissioned,
    DeviceRegistered,
    DeviceStatus,
    DeviceUpdated,
)
from outpost_contracts.envelope import EventEnvelope
from outpost_contracts.provisioning import (
    DeviceCertificateRenewed,
    DeviceCertificateRevoked,
    DeviceProvisioned,
    RegistrationTokenCreated,
    RegistrationTokenRedeemed,
    RegistrationTokenRevoked,
)
from outpost_devices.adapters.registry_projections import RegistryProjector

_encode = msgspec.json.encode


class DevicesProjector:
    async def apply(self, conn: AsyncConnection, e: EventEnvelope) -> None:
        if e.stream_type != "device":  # sites, groups… have projectors of their own
            return
        data = e.data
        if isinstance(data, DeviceRegistered):
            await conn.execute(
                text(
                    "INSERT INTO devices (org_id, id, name, status, device_type, site_id, group_id,"
                    " tags, attributes, created_at, updated_at, version, profile_id) VALUES (:org,"
                    " :id, :name, :status, :type, :site, :group, CAST(:tags AS jsonb),"
                    " CAST(:attrs AS jsonb), :at, :at, :v, :profile)"
                ),
                {
                    "org": e.org_id,
                    "id": e.stream_id,
                    "name": data.name,
                    "status": DeviceStatus.REGISTERED.value,
                    "type": data.device_type,
                    "site": data.site_id,
                    "group": data.group_id,
                    "profile": data.profile_id,
                    "tags": _encode(data.tags).decode(),
                    "attrs": _encode(data.attributes).decode(),
                    "at": e.occurred_at,
                    "v": e.version,
                },
            )
        elif isinstance(data, DeviceUpdated):
            sets = ["updated_at = :at", "version = :v"]
            params: dict[str, object] = {
                "org": e.org_id,
                "id": e.stream_id,
                "at": e.occurred_at,
                "v": e.version,
            }
            for api_name, (column, value) in {
                "name": ("name", data.name),
                "deviceType": ("device_type", data.device_type),
                "siteId": ("site_id", data.site_id),
                "groupId": ("group_id", data.group_id),
                "profileId": ("profile_id", data.profile_id),
                "tags": ("tags", _encode(data.tags).decode()),
                "attributes": ("attributes", _encode(data.attributes).decode()),
            }.items():
                if api_name in data.changed:
                    json = column in ("tags", "attributes")
                    sets.append(
                        f"{column} = CAST(:{column} AS jsonb)" if json else f"{column} = :{column}"
                    )
                    params[column] = value
            await conn.execute(
                text(f"UPDATE devices SET {', '.join(sets)} WHERE org_id = :org AND id = :id"),
                params,
            )
        elif isinstance(data, DeviceDecommissioned):
            await conn.execute(
                text(
                    "UPDATE devices SET status = :s, updated_at = :at, version = :v"
                    " WHERE org_id = :org AND id = :id"
                ),
                {
                    "org": e.org_id,
                    "id": e.stream_id,
                    "s": DeviceStatus.DECOMMISSIONED.value,
                    "at": e.occurred_at,
                    "v": e.version,
                },
            )
        elif isinstance(data, DeviceActivated):
            await conn.execute(
                text(
                    "UPDATE devices SET status = CASE WHEN status = :provisioned THEN :s"
                    " ELSE status END, updated_at = :at, version = :v"
                    " WHERE org_id = :org AND id = :id"
                ),
                {
                    "org": e.org_id,
                    "id": e.stream_id,
                    "provisioned": DeviceStatus.PROVISIONED.value,
                    "s": DeviceStatus.ACTIVE.value,
                    "at": e.occurred_at,
                    "v": e.version,
                },
            )
        elif isinstance(data, DeviceProvisioned):
            await conn.execute(
                text(
                    "UPDATE devices SET status = CASE WHEN status = :registered THEN :s"
                    " ELSE status END, updated_at = :at, version = :v"
                    " WHERE org_id = :org AND id = :id"
                ),
                {
                    "org": e.org_id,
                    "id": e.stream_id,
                    "registered": DeviceStatus.REGISTERED.value,
                    "s": DeviceStatus.PROVISIONED.value,
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


class ProvisioningProjector:
    """Registration tokens and device certificates (the token's hash is set beside the
    creation event by the handler, never carried by an event)."""

    async def apply(self, conn: AsyncConnection, e: EventEnvelope) -> None:
        data = e.data
        params: dict[str, object] = {"org": e.org_id, "id": e.stream_id, "at": e.occurred_at}
        if isinstance(data, RegistrationTokenCreated):
            await conn.execute(
                text(
                    "INSERT INTO registration_tokens (org_id, id, device_id, device_name,"
                    " created_at, expires_at) VALUES (:org, :id, :device, :name, :at, :exp)"
                ),
                {
                    **params,
                    "device": data.device_id,
                    "name": data.device_name,
                    "exp": data.expires_at,
                },
            )
        elif isinstance(data, RegistrationTokenRedeemed):
            # The redeeming handler already set used_at atomically; this keeps a replay equal.
            await conn.execute(
                text(
                    "UPDATE registration_tokens SET used_at = coalesce(used_at, :at)"
                    " WHERE org_id = :org AND id = :id"
                ),
                params,
            )
        elif isinstance(data, RegistrationTokenRevoked):
            await conn.execute(
                text(
                    "UPDATE registration_tokens SET revoked_at = :at"
                    " WHERE org_id = :org AND id = :id"
                ),
                params,
            )
        elif isinstance(data, DeviceProvisioned | DeviceCertificateRenewed):
            await conn.execute(
                text(
                    "INSERT INTO device_certificates (org_id, id, serial, device_id, not_before,"
                    " not_after, created_at) VALUES (:org, :cid, :serial, :id, :nb, :na, :at)"
                ),
                {
                    **params,
                    "cid": data.certificate_id,
                    "serial": data.serial,
                    "nb": data.not_before,
                    "na": data.not_after,
                },
            )
        elif isinstance(data, DeviceCertificateRevoked):
            await conn.execute(
                text(
                    "UPDATE device_certificates SET revoked_at = :at WHERE org_id = :org"
                    " AND device_id = :id AND serial = :serial AND revoked_at IS NULL"
                ),
                {**params, "serial": data.serial},
            )


PROJECTORS = (DevicesProjector(), RegistryProjector(), ProvisioningProjector())
