"""What readings' annotation use cases need of storage, as ports (ADR 0089, the shape of
devices' ADR 0085): a unit of work opened per tenant that carries the event stream (for the
kit's ``Aggregate``) and the reads of the read models of annotation classes, annotations and
the organization's readings settings. Postgres implements them in
``adapters/annotation_store.py``; unit tests use the fake in
``tests/unit/readings_fakes.py``. No SQL and no driver type here.

Ingest, the queries of readings and retention still take the kit's unit of work and call
their adapters with it (ADR 0089 says why)."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol
from uuid import UUID

from outpost_contracts import annotations as api
from outpost_contracts import reference_pairs as pairs_api
from outpost_contracts.query import ListQuery, Page
from outpost_kit.aggregate import EventStream
from outpost_readings.domain.buckets import Buckets


@dataclass(frozen=True)
class SettingsRow:
    """The organization's own readings settings (``retention_days`` None: the default)."""

    auto_declare_sensors: bool
    retention_days: int | None
    version: int
    updated_at: datetime


@dataclass(frozen=True)
class Window:
    """Annotations whose range ``[from, to]`` meets ``[start, end)`` (either end open), of one
    device or of all."""

    device_id: UUID | None = None
    start: datetime | None = None
    end: datetime | None = None


class AnnotationsTx(Protocol):
    """One transaction in one tenant; leaving it without ``commit()`` rolls back."""

    @property
    def events(self) -> EventStream: ...

    async def commit(self) -> None: ...

    async def annotation_class(self, class_id: UUID) -> api.AnnotationClassView | None: ...

    async def classes(self, query: ListQuery) -> Page[api.AnnotationClassView]: ...

    async def class_name_taken(self, name: str, own_id: UUID | None) -> bool:
        """Whether another class of the tenant has ``name``."""
        ...

    async def lock_class(self, class_id: UUID, *, exclusive: bool) -> bool:
        """Lock the class: exclusively for its deletion, shared by an annotation that refers
        to it, so none starts using a class being deleted. False: the tenant has none."""
        ...

    async def annotations_of_class(self, class_id: UUID) -> int: ...

    async def device_in_registry(self, device_id: UUID) -> bool:
        """Whether readings' local registry knows the tenant's device."""
        ...

    async def annotation(self, annotation_id: UUID) -> api.AnnotationView | None: ...

    async def annotations(self, query: ListQuery, window: Window) -> Page[api.AnnotationView]:
        """A page of the collection, narrowed to ``window``."""
        ...

    async def annotations_of_devices(
        self,
        device_ids: Sequence[UUID],
        start: datetime,
        end: datetime,
        after: UUID | None,
        limit: int,
    ) -> list[api.AnnotationView]:
        """The annotations of ``device_ids`` overlapping ``[start, end)``, by id."""
        ...

    async def settings(self) -> SettingsRow | None:
        """The tenant's own settings (None: the deployment's defaults apply)."""
        ...


class AnnotationsUnitOfWork(Protocol):
    """``async with uow(org_id) as tx: ...; await tx.commit()``."""

    def __call__(self, org_id: UUID | None) -> AbstractAsyncContextManager[AnnotationsTx]: ...


# --- reference pairs (ADR 0098) -----------------------------------------------------------


@dataclass(frozen=True)
class ComparisonRows:
    """What the comparison's statement returns: the figures over the ``n`` buckets both
    sensors have readings in (Postgres' nulls as they are), and, when asked for, the series
    in time order (``corrected`` None where there is no fit)."""

    n: int
    bias: float | None
    mae: float | None
    rmse: float | None
    r: float | None
    slope: float | None
    intercept: float | None
    ts: list[datetime]
    test: list[float]
    reference: list[float]
    corrected: list[float | None]


class ReferencePairsTx(Protocol):
    """One transaction in one tenant; leaving it without ``commit()`` rolls back."""

    @property
    def events(self) -> EventStream: ...

    async def commit(self) -> None: ...

    async def pair(self, pair_id: UUID) -> pairs_api.ReferencePairView | None: ...

    async def pairs(self, query: ListQuery) -> Page[pairs_api.ReferencePairView]: ...

    async def device_in_registry(self, device_id: UUID) -> bool:
        """Whether readings' local registry knows the tenant's device."""
        ...

    async def sensor_type(self, device_id: UUID, sensor: str) -> str | None:
        """The ``valueType`` of the device's sensor as readings knows it (None: unknown)."""
        ...

    async def compare(
        self,
        test: pairs_api.SensorRef,
        reference: pairs_api.SensorRef,
        *,
        width: int,
        buckets: Buckets,
        dense: bool,
        series: bool,
    ) -> ComparisonRows:
        """The comparison over ``buckets``, from the rollup of ``width`` seconds."""
        ...


class ReferencePairsUnitOfWork(Protocol):
    """``async with uow(org_id) as tx: ...; await tx.commit()``."""

    def __call__(self, org_id: UUID | None) -> AbstractAsyncContextManager[ReferencePairsTx]: ...
