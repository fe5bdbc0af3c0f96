"""Fleet's fake unit of work for the profile and pack use cases (the kit's
``outpost_devkit.testing.fakes``, ADR 0089): ``FakeProfiles`` is the ``ProfilesUnitOfWork``
port of ``app/profile_ports.py`` held in memory, with the read models the projector keeps
(sensor profiles, device profiles, packs: a pack name once per organization, refused with
the kit's ``Taken`` as the unique index does), the devices per profile and the bindings'
uses of artefacts. The Postgres adapter is what the integration tests cover."""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from outpost_contracts import fleet as api
from outpost_contracts.envelope import EventEnvelope
from outpost_contracts.query import ListQuery, Page
from outpost_devkit.testing.fakes import (
    FakeUnitOfWork,
    FakeUnitOfWorkFactory,
    FakeWorld,
    first_page,
)
from outpost_fleet.domain import packs, profiles
from outpost_kit.aggregate import Taken

Row = tuple[UUID, Any, datetime, datetime]  # organization, state, created, updated


@dataclass
class World(FakeWorld):
    sensor_profiles: dict[UUID, Row] = field(default_factory=dict)
    device_profiles: dict[UUID, Row] = field(default_factory=dict)
    packs: dict[UUID, Row] = field(default_factory=dict)
    devices: dict[UUID, int] = field(default_factory=dict)  # device profile -> devices
    artefact_uses: dict[UUID, tuple[str, ...]] = field(default_factory=dict)


_TABLES: dict[str, tuple[str, Callable[[Any, Any, UUID], Any]]] = {
    profiles.SENSOR_PROFILE: ("sensor_profiles", profiles.evolve_sensor_profile),
    profiles.DEVICE_PROFILE: ("device_profiles", profiles.evolve_device_profile),
    packs.PACK: ("packs", packs.evolve_pack),
}


def _project(w: World, e: EventEnvelope) -> None:
    """What the profile projector does in SQL, on the world."""
    if e.stream_type not in _TABLES:
        return
    name, evolve = _TABLES[e.stream_type]
    table: dict[UUID, Row] = getattr(w, name)
    before = table.get(e.stream_id)
    state = evolve(before[1] if before else None, e.data, e.stream_id)
    if state.deleted:
        table.pop(e.stream_id, None)
        return
    if isinstance(state, packs.Pack) and any(
        org == e.org_id and p.name == state.name and key != e.stream_id
        for key, (org, p, _c, _u) in w.packs.items()
    ):
        raise Taken("packs_name")
    table[e.stream_id] = (e.org_id, state, before[2] if before else e.occurred_at, e.occurred_at)


def sensor_view(row: Row) -> api.SensorProfileView:
    _org, s, created, updated = row
    return api.SensorProfileView(
        id=s.id,
        name=s.name,
        unit=s.unit,
        value_type=s.value_type,
        key=s.key,
        min=s.min,
        max=s.max,
        precision=s.precision,
        display_name=s.display_name,
        version=s.version,
        created_at=created,
        updated_at=updated,
    )


def device_view(row: Row) -> api.DeviceProfileView:
    _org, d, created, updated = row
    return api.DeviceProfileView(
        id=d.id,
        name=d.name,
        components=[api.ProfileComponent(name=c.name, kind=c.kind) for c in d.components],
        sensors=[
            api.ProfileSensor(
                key=s.key, sensor_profile_id=s.sensor_profile_id, component=s.component
            )
            for s in d.sensors
        ],
        rule_templates=list(d.rule_templates),
        implied_rule_templates=profiles.implied_rule_templates(d),
        config_artefact_id=d.config_artefact_id,
        expected_interval_seconds=d.expected_interval_seconds,
        firmware_family=d.firmware_family,
        description=d.description,
        version=d.version,
        created_at=created,
        updated_at=updated,
    )


def pack_view(row: Row) -> api.PackView:
    _org, p, created, updated = row
    if p.origin is api.PackOrigin.AUTHORED:
        items = [api.PackItemView(kind=r.kind, id=r.id) for r in p.refs]
    else:
        items = [api.PackItemView(kind=i.kind, id=i.resource_id, key=i.key) for i in p.installed]
    return api.PackView(
        id=p.id,
        name=p.name,
        pack_version=p.pack_version,
        origin=p.origin,
        items=items,
        conflicts=list(p.conflicts),
        description=p.description,
        version=p.version,
        created_at=created,
        updated_at=updated,
    )


class FakeTx(FakeUnitOfWork[World]):
    """One transaction of ``FakeProfiles``; ``tenant`` plays row-level security."""

    def project(self, envelope: EventEnvelope) -> None:
        _project(self.w, envelope)

    def _rows(self, table: dict[UUID, Row]) -> list[Row]:
        return [row for row in table.values() if self.visible(row[0])]

    def _row(self, table: dict[UUID, Row], key: UUID) -> Row | None:
        row = table.get(key)
        return row if row is not None and self.visible(row[0]) else None

    async def sensor_profile(self, profile_id: UUID) -> api.SensorProfileView | None:
        row = self._row(self.w.sensor_profiles, profile_id)
        return None if row is None else sensor_view(row)

    async def sensor_profiles(self, query: ListQuery) -> Page[api.SensorProfileView]:
        views = [sensor_view(r) for r in self._rows(self.w.sensor_profiles)]
        return first_page(views, query, key=lambda v: v.id)

    async def share_sensor_profiles(self, ids: Collection[UUID]) -> frozenset[UUID]:
        return frozenset(i for i in ids if self._row(self.w.sensor_profiles, i) is not None)

    async def lock_sensor_profile(self, profile_id: UUID) -> None:
        return None  # one test task: no race

    async def device_profiles_using(self, sensor_profile_id: UUID) -> list[UUID]:
        return sorted(
            r[1].id
            for r in self._rows(self.w.device_profiles)
            if any(s.sensor_profile_id == sensor_profile_id for s in r[1].sensors)
        )

    async def device_profile(self, profile_id: UUID) -> api.DeviceProfileView | None:
        row = self._row(self.w.device_profiles, profile_id)
        return None if row is None else device_view(row)

    async def device_profiles(self, query: ListQuery) -> Page[api.DeviceProfileView]:
        views = [device_view(r) for r in self._rows(self.w.device_profiles)]
        return first_page(views, query, key=lambda v: v.id)

    async def devices_with_profile(self, profile_id: UUID) -> int:
        return self.w.devices.get(profile_id, 0)

    async def artefact_uses(self, artefact_id: UUID) -> tuple[str, ...]:
        named = tuple(
            f"device profile {r[1].id}"
            for r in self._rows(self.w.device_profiles)
            if r[1].config_artefact_id == artefact_id
        )
        return self.w.artefact_uses.get(artefact_id, ()) + named

    async def pack(self, pack_id: UUID) -> api.PackView | None:
        row = self._row(self.w.packs, pack_id)
        return None if row is None else pack_view(row)

    async def packs(self, query: ListQuery) -> Page[api.PackView]:
        return first_page(
            [pack_view(r) for r in self._rows(self.w.packs)], query, key=lambda v: v.id
        )

    async def pack_named(self, name: str) -> UUID | None:
        return next((r[1].id for r in self._rows(self.w.packs) if r[1].name == name), None)


class FakeProfiles(FakeUnitOfWorkFactory[World, FakeTx]):
    def __init__(self) -> None:
        super().__init__(World(), FakeTx)
