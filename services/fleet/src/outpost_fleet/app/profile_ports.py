"""What the profile and pack use cases need of storage, as ports (the shape of ADR 0089): a
unit of work opened per tenant that carries the event stream (for the kit's ``Aggregate``)
and the reads of the read models of sensor profiles, device profiles and packs. Postgres
implements them in ``adapters/profile_store.py``; unit tests use the fake in
``tests/unit/fleet_profile_fakes.py``. No SQL and no driver type here."""

from __future__ import annotations

from collections.abc import Collection
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol
from uuid import UUID

from outpost_contracts import fleet as api
from outpost_contracts.query import ListQuery, Page
from outpost_kit.aggregate import EventStream


class SchemaProblems(Protocol):
    """A document against its JSON Schema (``adapters/json_schema.problems``)."""

    def __call__(self, document: Any, schema: dict[str, Any] | None) -> tuple[str, ...]: ...


class ProfilesTx(Protocol):
    """One transaction in one tenant; leaving it without ``commit()`` rolls back."""

    @property
    def events(self) -> EventStream: ...

    async def commit(self) -> None: ...

    async def sensor_profile(self, profile_id: UUID) -> api.SensorProfileView | None: ...

    async def sensor_profiles(self, query: ListQuery) -> Page[api.SensorProfileView]: ...

    async def share_sensor_profiles(self, ids: Collection[UUID]) -> frozenset[UUID]:
        """Which of ``ids`` are the tenant's sensor profiles, each locked against its
        deletion until the transaction ends (a device profile is about to name it)."""
        ...

    async def lock_sensor_profile(self, profile_id: UUID) -> None:
        """Lock the sensor profile for its deletion: no device profile starts naming it."""
        ...

    async def device_profiles_using(self, sensor_profile_id: UUID) -> list[UUID]:
        """The tenant's device profiles that name the sensor profile, by id."""
        ...

    async def device_profile(self, profile_id: UUID) -> api.DeviceProfileView | None: ...

    async def device_profiles(self, query: ListQuery) -> Page[api.DeviceProfileView]: ...

    async def devices_with_profile(self, profile_id: UUID) -> int:
        """How many of the tenant's devices have the device profile (fleet's device read
        model, which devices' events keep)."""
        ...

    async def artefact_uses(self, artefact_id: UUID) -> tuple[str, ...]:
        """What uses the config artefact (bindings, device profiles), as the artefact
        decider names them."""
        ...

    async def pack(self, pack_id: UUID) -> api.PackView | None: ...

    async def packs(self, query: ListQuery) -> Page[api.PackView]: ...

    async def pack_named(self, name: str) -> UUID | None:
        """The tenant's pack of that name (authored or imported), locked until the
        transaction ends so two imports of one pack run one after the other."""
        ...


class ProfilesUnitOfWork(Protocol):
    """``async with uow(org_id) as tx: ...; await tx.commit()``."""

    def __call__(self, org_id: UUID | None) -> AbstractAsyncContextManager[ProfilesTx]: ...
