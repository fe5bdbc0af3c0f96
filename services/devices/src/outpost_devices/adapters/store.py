"""Devices' SQL behind the ports of ``app/ports.py`` (ADR 0085): ``PgDevicesTx`` is the kit's
``UnitOfWork`` with devices' statements (the read models of devices and the registry,
provisioning, presence in ``adapters/presence_store.py``, commands in
``adapters/command_store.py``), ``PgDevices`` the factory ``bootstrap.py`` hands to the use
cases, and ``PgDevicesReads`` the read-only path over the kit's ``TenantReads``. The
projectors (``adapters/projections.py``, ``registry_projections.py``, ``command_store.py``)
keep the read models in step with the events."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from outpost_contracts import commands as command_api
from outpost_contracts.base import Event
from outpost_contracts.devices import DeviceStatus, DeviceView
from outpost_contracts.envelope import EventEnvelope
from outpost_contracts.presence import DeviceHealth
from outpost_contracts.provisioning import CertificateView
from outpost_contracts.query import ListQuery, Node, Page
from outpost_contracts.registry import ValueType
from outpost_devices.adapters import command_store, presence_store, queries
from outpost_devices.adapters import registry_queries as rq
from outpost_devices.app.ports import (
    Admission,
    Ca,
    DeviceParts,
    OpenCommand,
    Redeemed,
    StateRow,
)
from outpost_devices.domain import commands as command_domain
from outpost_devices.domain import devices, registration_tokens, registry
from outpost_devices.domain.presence import Presence
from outpost_devices.domain.profiles import ExistingSensor
from outpost_kit import ids, suspensions
from outpost_kit.db.listing import Collection, compile_filter, list_page
from outpost_kit.db.reads import TenantReads
from outpost_kit.db.uow import UnitOfWork, UnitOfWorkFactory

# Each read model by the stream type of its aggregate: its collection and row → view.
COLLECTIONS: dict[str, tuple[Collection, Callable[[Mapping[str, Any]], Any]]] = {
    devices.STREAM_TYPE: (queries.DEVICES, queries.device_view),
    registry.SITE: (rq.SITES, rq.site_view),
    registry.DEVICE_GROUP: (rq.DEVICE_GROUPS, rq.group_view),
    registry.COMPONENT: (rq.COMPONENTS, rq.component_view),
    registry.SENSOR: (rq.SENSORS, rq.sensor_view),
    registration_tokens.STREAM_TYPE: (queries.REGISTRATION_TOKENS, queries.registration_token_view),
}
# What refers to a site or a device group: the devices' column.
_REFERENCE = {registry.SITE: "site_id", registry.DEVICE_GROUP: "group_id"}
_BY_ID = {
    kind: f"SELECT {c.columns} FROM {c.table} WHERE id = :id"
    for kind, (c, _) in COLLECTIONS.items()
}
_DEVICE_BY_NAME = f"SELECT {queries.DEVICES.columns} FROM devices WHERE name = :name"
_CERTIFICATE = f"SELECT {queries.CERTIFICATES.columns} FROM device_certificates WHERE serial = :s"
_OPEN_COMMANDS = (
    "SELECT id, name, params, status, expires_at FROM commands WHERE device_id = :d"
    " AND status IN ('PENDING', 'SENT', 'ACKNOWLEDGED') ORDER BY id"
)


def _table(kind: str) -> str:
    return COLLECTIONS[kind][0].table


class PgDevicesTx(UnitOfWork):
    """One transaction (the kit's ``UnitOfWork``) with devices' statements."""

    async def __aenter__(self) -> PgDevicesTx:
        await super().__aenter__()
        return self

    # --- devices and the registry ---------------------------------------------------------

    async def find(self, kind: str, key: UUID) -> Any | None:
        row = (await self.execute(_BY_ID[kind], {"id": key})).first()
        return None if row is None else COLLECTIONS[kind][1](row._mapping)

    async def device_by_name(self, name: str) -> DeviceView | None:
        row = (await self.execute(_DEVICE_BY_NAME, {"name": name})).first()
        return None if row is None else queries.device_view(row._mapping)

    async def page(self, kind: str, query: ListQuery) -> Page[Any]:
        collection, view = COLLECTIONS[kind]
        return await list_page(self.conn, collection, query, view)

    async def name_taken(self, kind: str, name: str, other_than: UUID | None = None) -> bool:
        sql = f"SELECT 1 FROM {_table(kind)} WHERE name = :n AND id IS DISTINCT FROM :id"
        return (await self.execute(sql, {"n": name, "id": other_than})).first() is not None

    async def device_status(self, device_id: UUID, *, share: bool = False) -> DeviceStatus | None:
        sql = "SELECT status FROM devices WHERE id = :id" + (" FOR SHARE" if share else "")
        row = (await self.execute(sql, {"id": device_id})).first()
        return None if row is None else DeviceStatus(row.status)

    async def has(self, kind: str, key: UUID) -> bool:
        sql = f"SELECT 1 FROM {_table(kind)} WHERE id = :id FOR SHARE"
        return (await self.execute(sql, {"id": key})).first() is not None

    async def in_use(self, kind: str, key: UUID) -> int:
        await self.execute(f"SELECT 1 FROM {_table(kind)} WHERE id = :id FOR UPDATE", {"id": key})
        used = await self.execute(
            f"SELECT count(*) FROM devices WHERE {_REFERENCE[kind]} = :id"
            " AND status <> 'DECOMMISSIONED'",
            {"id": key},
        )
        return int(used.scalar_one())

    async def sensor_declared(self, device_id: UUID, key: str) -> bool:
        sql = "SELECT 1 FROM sensors WHERE device_id = :d AND key = :k"
        return (await self.execute(sql, {"d": device_id, "k": key})).first() is not None

    async def lock_devices(self, node: Node | None, limit: int) -> list[UUID]:
        where, params = compile_filter(queries.DEVICES, node)
        params["_cap"] = limit
        rows = await self.execute(
            f"SELECT id FROM devices WHERE {where} ORDER BY id LIMIT :_cap FOR UPDATE", params
        )
        return [row.id for row in rows]

    async def device_parts(self, device_ids: Sequence[UUID]) -> dict[UUID, DeviceParts]:
        ids = list(dict.fromkeys(device_ids))
        if not ids:
            return {}
        devices_found = await self.execute(
            "SELECT id, profile_id FROM devices WHERE id = ANY(:ids)"
            " AND status <> 'DECOMMISSIONED' ORDER BY id FOR UPDATE",
            {"ids": ids},
        )
        profiles = {r.id: r.profile_id for r in devices_found}
        live = list(profiles)
        components: dict[UUID, set[str]] = {d: set() for d in live}
        for row in await self.execute(
            "SELECT device_id, name FROM components WHERE device_id = ANY(:ids)", {"ids": live}
        ):
            components[row.device_id].add(row.name)
        sensors: dict[UUID, list[tuple[UUID, ExistingSensor]]] = {d: [] for d in live}
        for row in await self.execute(
            "SELECT id, device_id, key, value_type, unit, valid_range FROM sensors"
            " WHERE device_id = ANY(:ids)",
            {"ids": live},
        ):
            view = rq.sensor_view_range(row.valid_range)
            sensors[row.device_id].append(
                (
                    row.id,
                    ExistingSensor(
                        key=row.key,
                        value_type=ValueType(row.value_type),
                        unit=row.unit,
                        valid_range=view,
                    ),
                )
            )
        return {
            d: DeviceParts(
                profile_id=profiles[d],
                components=frozenset(components[d]),
                sensors=tuple(s for _id, s in sensors[d]),
                sensor_ids={s.key: sensor_id for sensor_id, s in sensors[d]},
            )
            for d in live
        }

    # --- provisioning ---------------------------------------------------------------------

    async def ca(self) -> Ca | None:
        row = (
            await self.execute(
                "SELECT certificate_pem, private_key_enc FROM certificate_authorities"
            )
        ).first()
        return None if row is None else Ca(row.certificate_pem, row.private_key_enc)

    async def add_ca(
        self, org_id: UUID, certificate_pem: str, sealed_key: str, not_after: datetime, at: datetime
    ) -> None:
        await self.execute(
            "INSERT INTO certificate_authorities (org_id, certificate_pem, private_key_enc,"
            " not_after, created_at) VALUES (:org, :pem, :enc, :na, :at)"
            " ON CONFLICT (org_id) DO NOTHING",
            {"org": org_id, "pem": certificate_pem, "enc": sealed_key, "na": not_after, "at": at},
        )

    async def set_token_hash(self, token_id: UUID, token_hash: str) -> None:
        await self.execute(
            "UPDATE registration_tokens SET token_hash = :h WHERE id = :id",
            {"h": token_hash, "id": token_id},
        )

    async def redeem(self, token_hash: str, now: datetime) -> Redeemed | None:
        row = (
            await self.execute(
                "UPDATE registration_tokens SET used_at = :now WHERE token_hash = :h"
                " AND used_at IS NULL AND revoked_at IS NULL AND expires_at > :now"
                " RETURNING id, device_id",
                {"now": now, "h": token_hash},
            )
        ).first()
        return None if row is None else Redeemed(row.id, row.device_id)

    async def suspended(self, org_id: UUID) -> bool:
        return await suspensions.suspended(self, org_id)

    async def certificate(
        self, serial: str, device_id: UUID | None = None
    ) -> CertificateView | None:
        if device_id is None:
            row = (await self.execute(_CERTIFICATE, {"s": serial})).first()
        else:
            sql = _CERTIFICATE + " AND device_id = :d"
            row = (await self.execute(sql, {"s": serial, "d": device_id})).first()
        return None if row is None else queries.certificate_view(row._mapping)

    async def certificates(self, device_id: UUID, query: ListQuery) -> Page[CertificateView]:
        return await list_page(
            self.conn,
            queries.CERTIFICATES,
            query,
            queries.certificate_view,
            extra_where="device_id = :cert_device",
            extra_params={"cert_device": device_id},
        )

    # --- presence -------------------------------------------------------------------------

    async def lock_presence(self, device_id: UUID) -> tuple[Presence, int] | None:
        return await presence_store.lock(self, device_id)

    async def save_presence(
        self,
        device_id: UUID,
        state: Presence,
        version: int,
        events: Sequence[Event],
        now: datetime,
    ) -> int:
        return await presence_store.save(self, device_id, state, version, events, now)

    async def presence_organizations(self) -> list[UUID]:
        return await presence_store.organizations(self)

    async def online_presences(self) -> dict[UUID, Presence]:
        return await presence_store.online_states(self)

    async def presences(self, device_ids: Sequence[UUID]) -> dict[UUID, Presence]:
        return await presence_store.states(self, device_ids)

    async def record_seen(self, seen: Mapping[UUID, datetime]) -> int:
        return await presence_store.record_seen(self, seen)

    # --- commands -------------------------------------------------------------------------

    async def command(self, device_id: UUID, command_id: UUID) -> command_api.CommandView | None:
        row = (
            await self.execute(
                f"SELECT {command_store.COMMANDS.columns} FROM commands"
                " WHERE id = :id AND device_id = :d",
                {"id": command_id, "d": device_id},
            )
        ).first()
        return None if row is None else command_store.command_view(row._mapping)

    async def commands(self, device_id: UUID, query: ListQuery) -> Page[command_api.CommandView]:
        return await list_page(
            self.conn,
            command_store.COMMANDS,
            query,
            command_store.command_view,
            extra_where="device_id = :command_device",
            extra_params={"command_device": device_id},
        )

    async def open_commands(self, device_id: UUID) -> list[OpenCommand]:
        rows = await self.execute(_OPEN_COMMANDS, {"d": device_id})
        return [
            OpenCommand(r.id, r.name, command_store.json_value(r.params), r.status, r.expires_at)
            for r in rows
        ]

    async def state(self, device_id: UUID, *, lock: bool = False) -> StateRow:
        return await command_store.load_state(self.conn, device_id, lock=lock)

    async def ensure_state(self, org_id: UUID, device_id: UUID) -> None:
        await self.execute(
            "INSERT INTO device_states (org_id, device_id) VALUES (:org, :d)"
            " ON CONFLICT DO NOTHING",
            {"org": org_id, "d": device_id},
        )

    async def save_reported(
        self,
        org_id: UUID,
        device_id: UUID,
        reported: dict[str, Any],
        at: datetime,
        reported_version: int,
    ) -> None:
        await command_store.save_reported(
            self.conn, org_id, device_id, reported, at, reported_version
        )

    async def publish_report(
        self, device_id: UUID, version: int, fact: Event, at: datetime
    ) -> None:
        assert self.org_id is not None
        envelope = EventEnvelope(
            id=ids.new_id(),
            org_id=self.org_id,
            stream_id=device_id,
            stream_type=command_store.REPORT_STREAM_TYPE,
            version=version,
            occurred_at=at,
            data=fact,
        )
        await presence_store.enqueue(self, [envelope])

    async def desired_states(
        self, device_ids: Sequence[UUID]
    ) -> dict[UUID, tuple[command_domain.DesiredState | None, int]]:
        rows = await self.execute(
            "SELECT d.id, s.version, s.desired, s.local, s.fleet_document, s.fleet_sources,"
            " s.fleet_digest FROM devices d"
            " LEFT JOIN device_states s ON s.org_id = d.org_id AND s.device_id = d.id"
            " WHERE d.id = ANY(:ids) AND d.status <> 'DECOMMISSIONED' FOR SHARE OF d",
            {"ids": list(dict.fromkeys(device_ids))},
        )
        return {r.id: command_store.desired_state(r.id, r._mapping) for r in rows}

    async def wake_many(self, org_id: UUID, device_ids: Sequence[UUID], due: datetime) -> None:
        await command_store.wake_many(self.conn, org_id, device_ids, due)

    async def mark_state_delivered(self, device_id: UUID, version: int) -> None:
        await command_store.mark_state_delivered(self.conn, device_id, version)

    async def wake(self, org_id: UUID, device_id: UUID, due: datetime) -> None:
        await command_store.wake(self.conn, org_id, device_id, due)

    async def wakeup_seq(self, device_id: UUID) -> int | None:
        row = (
            await self.execute(
                "SELECT seq FROM command_wakeups WHERE device_id = :d", {"d": device_id}
            )
        ).first()
        return None if row is None else int(row.seq)

    async def claim_due(
        self, now: datetime, lease_until: datetime, limit: int
    ) -> list[tuple[UUID, UUID, int]]:
        return await command_store.claim_due(self.conn, now, lease_until, limit)

    async def claim_device(
        self, device_id: UUID, now: datetime, lease_until: datetime
    ) -> int | None:
        return await command_store.claim_device(self.conn, device_id, now, lease_until)

    async def reschedule(
        self,
        org_id: UUID,
        device_id: UUID,
        due: datetime | None,
        attempts: int,
        seq: int | None,
    ) -> None:
        await command_store.reschedule(self.conn, org_id, device_id, due, attempts, seq)


class PgDevices(UnitOfWorkFactory):
    """The ``DevicesUnitOfWork`` bootstrap hands to the use cases: the kit's factory, whose
    units of work carry devices' statements (``PgDevices.over(runtime.uow)``)."""

    def __call__(self, org_id: UUID | None) -> PgDevicesTx:
        return PgDevicesTx(self.engine, self.codec, org_id=org_id, projectors=self.projectors)


# One round trip: the organization's CA, the certificate as issued, the device's status and
# whether the organization is suspended (ADR 0076). The CA is a one-row table; a missing
# certificate or device leaves its columns NULL.
ADMISSION = (
    "SELECT (SELECT certificate_pem FROM certificate_authorities) AS ca_pem,"
    " c.not_after, c.revoked_at, (SELECT status FROM devices WHERE id = $2) AS status,"
    " (SELECT suspended FROM organization_suspensions WHERE tenant_id = $3) AS suspended"
    " FROM (SELECT 1) AS one"
    " LEFT JOIN device_certificates c ON c.serial = $1 AND c.device_id = $2"
)
# The raw read path's statements (asyncpg placeholders), built once.
_READ_BY_ID = {kind: rq.select_by_id(c) for kind, (c, _) in COLLECTIONS.items()}


class PgDevicesReads:
    """The ``DevicesReads`` port over the kit's ``TenantReads`` (one statement per read)."""

    def __init__(self, reads: TenantReads) -> None:
        self.reads = reads

    async def find(self, org_id: UUID, kind: str, key: UUID) -> Any | None:
        async with self.reads(org_id) as conn:
            row = await conn.fetchrow(_READ_BY_ID[kind], key)
        return None if row is None else COLLECTIONS[kind][1](row)

    async def device_by_name(self, org_id: UUID, name: str) -> DeviceView | None:
        async with self.reads(org_id) as conn:
            row = await conn.fetchrow(queries.SELECT_DEVICE_BY["name"], name)
        return None if row is None else queries.device_view(row)

    async def health(self, org_id: UUID, device_id: UUID) -> DeviceHealth | None:
        async with self.reads(org_id) as conn:
            row = await conn.fetchrow(presence_store.HEALTH, device_id)
        if row is None:
            return None
        state = presence_store.decode_state(row["state"])
        return DeviceHealth(
            device_id=row["id"],
            online=row["online"],
            connections=len(state.connections),
            protocol=state.protocol,
            last_seen_at=row["last_seen_at"],
            last_connected_at=row["last_connected_at"],
            last_disconnected_at=row["last_disconnected_at"],
            version=row["presence_version"],
        )

    async def admission(self, org_id: UUID, serial: str, device_id: UUID) -> Admission:
        async with self.reads(org_id) as conn:
            row = await conn.fetchrow(ADMISSION, serial, device_id, org_id)
        assert row is not None  # (SELECT 1) always gives one row
        status = row["status"]
        return Admission(
            ca_pem=row["ca_pem"],
            not_after=row["not_after"],
            revoked_at=row["revoked_at"],
            status=None if status is None else DeviceStatus(status),
            suspended=bool(row["suspended"]),
        )
