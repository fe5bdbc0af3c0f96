"""Devices' fakes, written once for the unit tests of the use cases (cosmicpython's
FakeUnitOfWork, as ``exports_fakes.py`` does for exports): ``FakeDevices`` is the
``DevicesUnitOfWork`` port of ``app/ports.py`` held in memory, ``FakeReads`` its
``DevicesReads``. The read models are what the projectors would make of the events, folded
here with the domain's own ``evolve`` (devices, the registry, commands); a device's name is
unique per organization as the read model's index makes it, refused with the kit's ``Taken``;
each tenant sees only its own streams (row-level security). A transaction works on a copy and
replaces the world only on ``commit()``, so leaving it rolls back as Postgres would. The
Postgres adapter (``adapters/store.py``) is what the integration tests cover.

Presence is not faked: its use cases are covered against Postgres
(``tests/integration/test_presence_broker.py``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any
from uuid import UUID

import msgspec

from outpost_contracts import commands as command_api
from outpost_contracts import registry as registry_api
from outpost_contracts.devices import DeviceStatus, DeviceView
from outpost_contracts.envelope import EventEnvelope
from outpost_contracts.presence import CommandStatus
from outpost_contracts.provisioning import CertificateView
from outpost_contracts.query import ListQuery, Node, Page
from outpost_devices.app import aggregates
from outpost_devices.app.ports import (
    EMPTY_STATE,
    Admission,
    Ca,
    DeviceParts,
    OpenCommand,
    Redeemed,
    StateRow,
)
from outpost_devices.domain import commands as command_domain
from outpost_devices.domain.profiles import ExistingSensor
from outpost_devkit.testing.fakes import (
    FakeUnitOfWork,
    FakeUnitOfWorkFactory,
    FakeWorld,
    first_page,
)
from outpost_kit.aggregate import Aggregate, Taken, fold

# Each kind the fake keeps a read model of: its aggregate and its view type.
_KINDS: dict[str, tuple[Aggregate, type[Any]]] = {
    aggregates.DEVICES.stream_type: (aggregates.DEVICES, DeviceView),
    aggregates.SITES.stream_type: (aggregates.SITES, registry_api.SiteView),
    aggregates.GROUPS.stream_type: (aggregates.GROUPS, registry_api.DeviceGroupView),
    aggregates.COMPONENTS.stream_type: (aggregates.COMPONENTS, registry_api.ComponentView),
    aggregates.SENSORS.stream_type: (aggregates.SENSORS, registry_api.SensorView),
    aggregates.COMMANDS.stream_type: (aggregates.COMMANDS, command_api.CommandView),
}
_REFERENCE = {aggregates.SITES.stream_type: "site_id", aggregates.GROUPS.stream_type: "group_id"}


@dataclass
class Wakeup:
    org_id: UUID
    due: datetime
    attempts: int = 0
    seq: int = 0


@dataclass
class World(FakeWorld):
    cas: dict[UUID, Ca] = field(default_factory=dict)
    suspended: set[UUID] = field(default_factory=set)
    states: dict[UUID, StateRow] = field(default_factory=dict)
    wakeups: dict[UUID, Wakeup] = field(default_factory=dict)
    facts: list[tuple[UUID, int, Any]] = field(default_factory=list)  # the outbox's facts


def _view(kind: str, stream: Sequence[EventEnvelope]) -> Any | None:
    """What the projector keeps of one stream: the folded state as its view (None once
    deleted)."""
    aggregate, view_type = _KINDS[kind]
    state, version = fold(aggregate.evolve, stream[0].stream_id, stream)
    if state is None or getattr(state, "deleted", False):
        return None
    names = {f.name for f in msgspec.structs.fields(view_type)}
    values = {n: getattr(state, n) for n in names if hasattr(state, n) and n != "version"}
    if "tags" in values:
        values["tags"] = list(values["tags"])
    return view_type(
        **values,
        **{"created_at": stream[0].occurred_at, "version": version}
        | ({"updated_at": stream[-1].occurred_at} if "updated_at" in names else {}),
    )


class FakeTx(FakeUnitOfWork[World]):
    """One transaction of ``FakeDevices``; ``tenant`` plays the tenant's row-level security."""

    def project(self, envelope: EventEnvelope) -> None:
        self.check_unique(envelope)
        data = envelope.data
        if isinstance(data, command_api.DesiredStateChanged):
            state = self.w.states.get(data.device_id, EMPTY_STATE)
            fleet = data.fleet
            self.w.states[data.device_id] = replace(
                state,
                desired=dict(data.desired),
                version=envelope.version,
                desired_updated_at=envelope.occurred_at,
                local=None if data.local is None else dict(data.local),
                sources=state.sources if fleet is None else dict(fleet.sources),
                digest=state.digest if fleet is None else fleet.digest,
            )

    # --- the tenant's view of the world -------------------------------------------------

    def views(self, kind: str, world: World | None = None) -> dict[UUID, Any]:
        w = world or self.w
        found = {}
        for key, stream in w.streams.items():
            if not stream or stream[0].stream_type != kind:
                continue
            if self.visible(stream[0].org_id):
                view = _view(kind, stream)
                if view is not None:
                    found[key] = view
        return found

    def check_unique(self, envelope: EventEnvelope) -> None:
        """The devices read model's unique name per organization, as Postgres checks it:
        against this transaction's rows and every committed one."""
        name = getattr(envelope.data, "name", None)
        if envelope.stream_type != aggregates.DEVICES.stream_type or not isinstance(name, str):
            return
        for world in (self.w, self._world):
            for key, view in self.views(aggregates.DEVICES.stream_type, world).items():
                if view.name == name and key != envelope.stream_id:
                    raise Taken(f"a device named {name!r} is in the read model")

    # --- devices and the registry -------------------------------------------------------

    async def find(self, kind: str, key: UUID) -> Any | None:
        return self.views(kind).get(key)

    async def device_by_name(self, name: str) -> DeviceView | None:
        views = self.views(aggregates.DEVICES.stream_type).values()
        return next((v for v in views if v.name == name), None)

    async def page(self, kind: str, query: ListQuery) -> Page[Any]:
        return first_page(list(self.views(kind).values()), query, key=lambda v: v.id)

    async def name_taken(self, kind: str, name: str, other_than: UUID | None = None) -> bool:
        return any(v.name == name and k != other_than for k, v in self.views(kind).items())

    async def device_status(self, device_id: UUID, *, share: bool = False) -> DeviceStatus | None:
        view = await self.find(aggregates.DEVICES.stream_type, device_id)
        return None if view is None else view.status

    async def has(self, kind: str, key: UUID) -> bool:
        return key in self.views(kind)

    async def in_use(self, kind: str, key: UUID) -> int:
        column = _REFERENCE[kind]
        return sum(
            1
            for v in self.views(aggregates.DEVICES.stream_type).values()
            if getattr(v, column) == key and v.status != DeviceStatus.DECOMMISSIONED
        )

    async def sensor_declared(self, device_id: UUID, key: str) -> bool:
        sensors = self.views(aggregates.SENSORS.stream_type).values()
        return any(s.device_id == device_id and s.key == key for s in sensors)

    async def lock_devices(self, node: Node | None, limit: int) -> list[UUID]:
        if node is not None:
            raise NotImplementedError("the fake matches every device (no filter)")
        return sorted(self.views(aggregates.DEVICES.stream_type))[:limit]

    async def device_parts(self, device_ids: Sequence[UUID]) -> dict[UUID, DeviceParts]:
        devices = self.views(aggregates.DEVICES.stream_type)
        components = self.views(aggregates.COMPONENTS.stream_type).values()
        sensors = self.views(aggregates.SENSORS.stream_type).values()
        found = {}
        for device_id in dict.fromkeys(device_ids):
            view = devices.get(device_id)
            if view is None or view.status == DeviceStatus.DECOMMISSIONED:
                continue
            mine = [s for s in sensors if s.device_id == device_id]
            found[device_id] = DeviceParts(
                profile_id=view.profile_id,
                components=frozenset(c.name for c in components if c.device_id == device_id),
                sensors=tuple(
                    ExistingSensor(
                        key=s.key, value_type=s.value_type, unit=s.unit, valid_range=s.valid_range
                    )
                    for s in mine
                ),
                sensor_ids={s.key: s.id for s in mine},
            )
        return found

    # --- provisioning -------------------------------------------------------------------

    async def ca(self) -> Ca | None:
        return None if self.tenant is None else self.w.cas.get(self.tenant)

    async def add_ca(
        self, org_id: UUID, certificate_pem: str, sealed_key: str, not_after: datetime, at: datetime
    ) -> None:
        self.w.cas.setdefault(org_id, Ca(certificate_pem, sealed_key))

    async def set_token_hash(self, token_id: UUID, token_hash: str) -> None:
        raise NotImplementedError

    async def redeem(self, token_hash: str, now: datetime) -> Redeemed | None:
        raise NotImplementedError

    async def suspended(self, org_id: UUID) -> bool:
        return org_id in self.w.suspended

    async def certificate(
        self, serial: str, device_id: UUID | None = None
    ) -> CertificateView | None:
        raise NotImplementedError

    async def certificates(self, device_id: UUID, query: ListQuery) -> Page[CertificateView]:
        raise NotImplementedError

    # --- commands -----------------------------------------------------------------------

    async def command(self, device_id: UUID, command_id: UUID) -> command_api.CommandView | None:
        view = await self.find(aggregates.COMMANDS.stream_type, command_id)
        return view if view is not None and view.device_id == device_id else None

    async def commands(self, device_id: UUID, query: ListQuery) -> Page[command_api.CommandView]:
        raise NotImplementedError

    async def open_commands(self, device_id: UUID) -> list[OpenCommand]:
        views = self.views(aggregates.COMMANDS.stream_type)
        return [
            OpenCommand(v.id, v.name, v.params, v.status.value, v.expires_at)
            for _, v in sorted(views.items())
            if v.device_id == device_id and v.status in command_domain.OPEN
        ]

    async def state(self, device_id: UUID, *, lock: bool = False) -> StateRow:
        return self.w.states.get(device_id, EMPTY_STATE)

    async def ensure_state(self, org_id: UUID, device_id: UUID) -> None:
        self.w.states.setdefault(device_id, EMPTY_STATE)

    async def save_reported(
        self,
        org_id: UUID,
        device_id: UUID,
        reported: dict[str, Any],
        at: datetime,
        reported_version: int,
    ) -> None:
        state = self.w.states.get(device_id, EMPTY_STATE)
        self.w.states[device_id] = replace(
            state, reported=reported, reported_updated_at=at, reported_version=reported_version
        )

    async def publish_report(self, device_id: UUID, version: int, fact: Any, at: datetime) -> None:
        self.w.facts.append((device_id, version, fact))

    async def desired_states(
        self, device_ids: Sequence[UUID]
    ) -> dict[UUID, tuple[command_domain.DesiredState | None, int]]:
        devices = self.views(aggregates.DEVICES.stream_type)
        found = {}
        for device_id in dict.fromkeys(device_ids):
            if device_id not in devices or devices[device_id].status == DeviceStatus.DECOMMISSIONED:
                continue
            stream = self.w.streams.get(command_api.desired_state_stream(device_id), [])
            found[device_id] = (
                fold(aggregates.DESIRED.evolve, stream[0].stream_id, stream)
                if stream
                else (None, 0)
            )
        return found

    async def wake_many(self, org_id: UUID, device_ids: Sequence[UUID], due: datetime) -> None:
        for device_id in device_ids:
            await self.wake(org_id, device_id, due)

    async def mark_state_delivered(self, device_id: UUID, version: int) -> None:
        state = self.w.states[device_id]
        self.w.states[device_id] = replace(
            state, delivered_version=max(state.delivered_version, version)
        )

    async def wake(self, org_id: UUID, device_id: UUID, due: datetime) -> None:
        found = self.w.wakeups.get(device_id)
        if found is None:
            self.w.wakeups[device_id] = Wakeup(org_id, due)
        else:
            found.due, found.attempts, found.seq = min(found.due, due), 0, found.seq + 1

    async def wakeup_seq(self, device_id: UUID) -> int | None:
        found = self.w.wakeups.get(device_id)
        return None if found is None else found.seq

    async def claim_due(
        self, now: datetime, lease_until: datetime, limit: int
    ) -> list[tuple[UUID, UUID, int]]:
        due = sorted((w.due, d) for d, w in self.w.wakeups.items() if w.due <= now)[:limit]
        claimed = []
        for _, device_id in due:
            wakeup = self.w.wakeups[device_id]
            wakeup.due = lease_until
            claimed.append((wakeup.org_id, device_id, wakeup.attempts))
        return claimed

    async def claim_device(
        self, device_id: UUID, now: datetime, lease_until: datetime
    ) -> int | None:
        wakeup = self.w.wakeups.get(device_id)
        if wakeup is None or wakeup.due > now:
            return None
        wakeup.due = lease_until
        return wakeup.attempts

    async def reschedule(
        self,
        org_id: UUID,
        device_id: UUID,
        due: datetime | None,
        attempts: int,
        seq: int | None,
    ) -> None:
        found = self.w.wakeups.get(device_id)
        if seq is None:
            if due is not None and found is None:
                self.w.wakeups[device_id] = Wakeup(org_id, due, attempts)
        elif found is not None and found.seq == seq:
            if due is None:
                del self.w.wakeups[device_id]
            else:
                found.due, found.attempts = due, attempts


class FakeDevices(FakeUnitOfWorkFactory[World, FakeTx]):
    """The ``DevicesUnitOfWork`` of the unit tests: ``world`` is what Postgres would hold."""

    def __init__(self) -> None:
        super().__init__(World(), FakeTx)


class FakeReads:
    """The ``DevicesReads`` port over the same world (committed rows only)."""

    def __init__(self, devices: FakeDevices) -> None:
        self._devices = devices

    async def find(self, org_id: UUID, kind: str, key: UUID) -> Any | None:
        return await self._devices.tenant(org_id).find(kind, key)

    async def device_by_name(self, org_id: UUID, name: str) -> DeviceView | None:
        return await self._devices.tenant(org_id).device_by_name(name)

    async def health(self, org_id: UUID, device_id: UUID) -> Any:
        raise NotImplementedError

    async def admission(self, org_id: UUID, serial: str, device_id: UUID) -> Admission:
        raise NotImplementedError


class FakeDelivery:
    """The broker's side of a command delivery: ``online`` says whether the device holds its
    command subject; every offer is kept."""

    def __init__(self, online: bool) -> None:
        self.online = online
        self.offers: list[tuple[str, dict[str, Any]]] = []

    async def __call__(self, subject: str, payload: bytes) -> bool:
        self.offers.append((subject, msgspec.json.decode(payload)))
        return self.online


def command_statuses(devices: FakeDevices, org_id: UUID) -> dict[UUID, CommandStatus]:
    views = devices.tenant(org_id).views(aggregates.COMMANDS.stream_type)
    return {k: v.status for k, v in views.items()}
