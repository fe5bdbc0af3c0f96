"""What devices' use cases need of storage, as ports (ADR 0085): a unit of work opened per
tenant that carries the event stream (for the kit's ``Aggregate``) and the reads and writes
of the read models, one ``Protocol`` per area (devices and registry, provisioning, presence,
commands) joined in ``DevicesTx``; and the read-only path (``DevicesReads``) of the hot
GETs and the broker's callout. Postgres implements them in ``adapters/store.py``; unit tests
use the fakes in ``tests/unit/devices_fakes.py``. No SQL and no driver type here.

A read model is named by its aggregate's stream type (``devices.STREAM_TYPE``,
``registry.SITE``…), the key ``Aggregate`` already carries."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol
from uuid import UUID

from outpost_contracts import commands as api
from outpost_contracts.base import Event
from outpost_contracts.device_config import Source
from outpost_contracts.devices import DeviceStatus, DeviceView
from outpost_contracts.presence import DeviceHealth
from outpost_contracts.provisioning import CertificateView
from outpost_contracts.query import ListQuery, Node, Page
from outpost_devices.domain import commands as domain
from outpost_devices.domain.presence import Presence
from outpost_devices.domain.profiles import ExistingSensor
from outpost_kit.aggregate import EventStream

# --- the records the ports return -------------------------------------------------------


@dataclass(frozen=True)
class Ca:
    """The organization's CA as stored: its certificate (PEM) and its sealed private key."""

    certificate_pem: str
    sealed_key: str


@dataclass(frozen=True)
class Redeemed:
    """A registration token just spent, and the device it names."""

    token_id: UUID
    device_id: UUID


@dataclass(frozen=True)
class Admission:
    """What the broker's callout checks of one connection, read in one round trip: the
    organization's CA (None: it has none), the certificate as issued (``not_after`` None: not
    issued to that device), the device's status (None: no such device) and whether the
    organization is suspended."""

    ca_pem: str | None
    not_after: datetime | None
    revoked_at: datetime | None
    status: DeviceStatus | None
    suspended: bool


@dataclass(frozen=True)
class OpenCommand:
    """A command still waiting on its device (PENDING, SENT or ACKNOWLEDGED)."""

    id: UUID
    name: str
    params: Any
    status: str
    expires_at: datetime


@dataclass(frozen=True)
class StateRow:
    """A device's desired and reported state, and the desired version last delivered."""

    desired: dict[str, Any]
    version: int
    reported: dict[str, Any]
    desired_updated_at: datetime | None
    reported_updated_at: datetime | None
    delivered_version: int
    local: dict[str, Any] | None = None  # None: all of ``desired`` (rows before ADR 0091)
    sources: dict[str, Source] = field(default_factory=dict)  # the fleet's, by leaf
    digest: str = ""  # the fleet layer's ("" : none)
    reported_version: int = 0  # how many ReportedStateChanged the device has had

    def view(self, device_id: UUID, *, explain: bool = False) -> api.DeviceStateView:
        local = self.desired if self.local is None else self.local
        return api.DeviceStateView(
            device_id=device_id,
            desired=self.desired,
            reported=self.reported,
            delta=domain.delta(self.desired, self.reported),
            version=self.version,
            desired_updated_at=self.desired_updated_at,
            reported_updated_at=self.reported_updated_at,
            explain=domain.explain(self.desired, local, self.sources) if explain else None,
        )


EMPTY_STATE = StateRow({}, 0, {}, None, None, 0)


@dataclass(frozen=True)
class DeviceParts:
    """What assigning a device profile looks at: the device's profile, its components'
    names and its sensors (with their ids, to align them)."""

    profile_id: UUID | None
    components: frozenset[str] = frozenset()
    sensors: tuple[ExistingSensor, ...] = ()
    sensor_ids: Mapping[str, UUID] = field(default_factory=dict)


# --- one transaction, by area -----------------------------------------------------------


class Transaction(Protocol):
    """One transaction in one tenant (or none, for the plumbing scans); leaving it without
    ``commit()`` rolls back."""

    @property
    def events(self) -> EventStream: ...

    async def commit(self) -> None: ...


class DeviceRecords(Transaction, Protocol):
    """Devices and the registry (sites, device groups, components, sensors)."""

    async def find(self, kind: str, key: UUID) -> Any | None:
        """The view of one ``kind`` (a stream type) by id, as the read model holds it."""
        ...

    async def device_by_name(self, name: str) -> DeviceView | None: ...

    async def page(self, kind: str, query: ListQuery) -> Page[Any]:
        """A page of ``kind``'s collection (devices, a registry kind, registration tokens)."""
        ...

    async def name_taken(self, kind: str, name: str, other_than: UUID | None = None) -> bool:
        """Whether another object of ``kind`` (devices, sites, device groups) has ``name``."""
        ...

    async def device_status(self, device_id: UUID, *, share: bool = False) -> DeviceStatus | None:
        """The device's status (None: not a device of the tenant); ``share``: its row locked
        FOR SHARE until the transaction ends (a concurrent decommission waits)."""
        ...

    async def has(self, kind: str, key: UUID) -> bool:
        """Whether the site or device group exists, its row locked FOR SHARE until the
        transaction ends: a concurrent delete (which locks it FOR UPDATE first) waits, then
        sees the new reference and refuses; or it deletes first and this finds nothing."""
        ...

    async def in_use(self, kind: str, key: UUID) -> int:
        """Lock the site or device group FOR UPDATE (no device starts referring to it
        meanwhile); the number of devices, not decommissioned, that refer to it."""
        ...

    async def sensor_declared(self, device_id: UUID, key: str) -> bool: ...

    async def lock_devices(self, node: Node | None, limit: int) -> list[UUID]:
        """The ids of the devices the filter matches (at most ``limit``), in id order,
        locked FOR UPDATE until the transaction ends."""
        ...

    async def device_parts(self, device_ids: Sequence[UUID]) -> dict[UUID, DeviceParts]:
        """Those of ``device_ids`` that are devices of the tenant and not decommissioned,
        locked FOR UPDATE, with their components and sensors: a few statements for the lot,
        not a round trip per device."""
        ...


class ProvisioningRecords(Transaction, Protocol):
    """The organization's CA, registration tokens, certificates, suspension."""

    async def ca(self) -> Ca | None: ...

    async def add_ca(
        self, org_id: UUID, certificate_pem: str, sealed_key: str, not_after: datetime, at: datetime
    ) -> None:
        """Store the organization's CA unless one is already there (a concurrent maker's
        wins)."""
        ...

    async def set_token_hash(self, token_id: UUID, token_hash: str) -> None: ...

    async def redeem(self, token_hash: str, now: datetime) -> Redeemed | None:
        """Spend the token with this hash if it is unused, not revoked and not expired: one
        guarded statement, so of concurrent redemptions exactly one wins (the others queue
        on its row lock and find it spent)."""
        ...

    async def suspended(self, org_id: UUID) -> bool: ...

    async def certificate(
        self, serial: str, device_id: UUID | None = None
    ) -> CertificateView | None:
        """The certificate with this serial (hex), of ``device_id`` when given."""
        ...

    async def certificates(self, device_id: UUID, query: ListQuery) -> Page[CertificateView]: ...


class PresenceRecords(Transaction, Protocol):
    """Presence state per device (ADR 0055), its events through the outbox."""

    async def lock_presence(self, device_id: UUID) -> tuple[Presence, int] | None:
        """The device's presence and presence version, its row locked until the
        transaction ends; None for a device this tenant does not have."""
        ...

    async def save_presence(
        self,
        device_id: UUID,
        state: Presence,
        version: int,
        events: Sequence[Event],
        now: datetime,
    ) -> int:
        """Store the new state and the device's presence columns; each event takes the next
        presence version and an outbox row. The presence version after it."""
        ...

    async def presence_organizations(self) -> list[UUID]:
        """Every organization with presence state (read with no tenant set)."""
        ...

    async def online_presences(self) -> dict[UUID, Presence]:
        """The tenant's online devices and their presence, unlocked."""
        ...

    async def presences(self, device_ids: Sequence[UUID]) -> dict[UUID, Presence]: ...

    async def record_seen(self, seen: Mapping[UUID, datetime]) -> int:
        """Move ``lastSeenAt`` of the tenant's devices forward to the times given; how many
        moved."""
        ...


class CommandRecords(Transaction, Protocol):
    """Commands, desired/reported state and the delivery wake-ups (ADR 0056)."""

    async def command(self, device_id: UUID, command_id: UUID) -> api.CommandView | None: ...

    async def commands(self, device_id: UUID, query: ListQuery) -> Page[api.CommandView]: ...

    async def open_commands(self, device_id: UUID) -> list[OpenCommand]:
        """The device's PENDING, SENT and ACKNOWLEDGED commands, in id order."""
        ...

    async def state(self, device_id: UUID, *, lock: bool = False) -> StateRow: ...

    async def ensure_state(self, org_id: UUID, device_id: UUID) -> None:
        """The device's state row exists (empty if new), so it can be locked."""
        ...

    async def save_reported(
        self,
        org_id: UUID,
        device_id: UUID,
        reported: dict[str, Any],
        at: datetime,
        reported_version: int,
    ) -> None: ...

    async def publish_report(
        self, device_id: UUID, version: int, fact: Event, at: datetime
    ) -> None:
        """The fact of a report (``ReportedStateChanged``) to the DEVICES stream through the
        outbox: not appended to the event store, so never in the audit log."""
        ...

    async def desired_states(
        self, device_ids: Sequence[UUID]
    ) -> dict[UUID, tuple[domain.DesiredState | None, int]]:
        """The desired-state aggregate (None before its first event) and its version, of
        those of ``device_ids`` that are devices of the tenant and not decommissioned
        (locked FOR SHARE), from its read model in one statement: what a fleet batch
        decides on instead of loading 500 streams."""
        ...

    async def wake_many(self, org_id: UUID, device_ids: Sequence[UUID], due: datetime) -> None:
        """``wake`` for many devices in one statement."""
        ...

    async def mark_state_delivered(self, device_id: UUID, version: int) -> None: ...

    async def wake(self, org_id: UUID, device_id: UUID, due: datetime) -> None:
        """Make sure the sweeper looks at the device by ``due``."""
        ...

    async def wakeup_seq(self, device_id: UUID) -> int | None:
        """The sequence number of the device's wake-up (None: it has none)."""
        ...

    async def claim_due(
        self, now: datetime, lease_until: datetime, limit: int
    ) -> list[tuple[UUID, UUID, int]]:
        """(org, device, attempts) of due wake-ups, leased to this replica until
        ``lease_until``."""
        ...

    async def claim_device(
        self, device_id: UUID, now: datetime, lease_until: datetime
    ) -> int | None: ...

    async def reschedule(
        self,
        org_id: UUID,
        device_id: UUID,
        due: datetime | None,
        attempts: int,
        seq: int | None,
    ) -> None:
        """The device's next look (None: forget it), unless a change woke it since ``seq``."""
        ...


class DevicesTx(DeviceRecords, ProvisioningRecords, PresenceRecords, CommandRecords, Protocol):
    """Everything one devices transaction offers."""


class DevicesUnitOfWork(Protocol):
    """``async with uow(org_id) as tx: ...; await tx.commit()``."""

    def __call__(self, org_id: UUID | None) -> AbstractAsyncContextManager[DevicesTx]: ...


class DevicesReads(Protocol):
    """The read-only path: one statement per call, its own snapshot, in the tenant."""

    async def find(self, org_id: UUID, kind: str, key: UUID) -> Any | None:
        """The view of one ``kind`` (devices or a registry kind) by id."""
        ...

    async def device_by_name(self, org_id: UUID, name: str) -> DeviceView | None: ...

    async def health(self, org_id: UUID, device_id: UUID) -> DeviceHealth | None: ...

    async def admission(self, org_id: UUID, serial: str, device_id: UUID) -> Admission: ...
