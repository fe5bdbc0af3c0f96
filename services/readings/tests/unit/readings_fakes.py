"""Readings' fake unit of work for the annotation use cases (the kit's
``outpost_devkit.testing.fakes``, ADR 0089): ``FakeAnnotations`` is the
``AnnotationsUnitOfWork`` port of ``app/ports.py`` held in memory, with the read models
``AnnotationsProjector`` keeps (a class name unique per organization, refused with the
kit's ``Taken`` as the unique index does), the local device registry and the settings. The
Postgres adapter (``adapters/annotation_store.py``) is what the integration tests cover."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from outpost_contracts import annotations as api
from outpost_contracts.envelope import EventEnvelope
from outpost_contracts.query import ListQuery, Page
from outpost_devkit.testing.fakes import (
    FakeUnitOfWork,
    FakeUnitOfWorkFactory,
    FakeWorld,
    first_page,
    update_row,
)
from outpost_kit.aggregate import Taken
from outpost_readings.app.ports import SettingsRow, Window

_ANNOTATION_FIELDS = {"classId": "class_id", "from": "from_"}


@dataclass
class World(FakeWorld):
    classes: dict[UUID, tuple[UUID, api.AnnotationClassView]] = field(default_factory=dict)
    annotations: dict[UUID, tuple[UUID, api.AnnotationView]] = field(default_factory=dict)
    settings: dict[UUID, SettingsRow] = field(default_factory=dict)
    devices: dict[UUID, UUID] = field(default_factory=dict)  # device -> its organization


def _changes(data: Any, names: dict[str, str] | None = None) -> dict[str, Any]:
    names = names or {}
    return {names.get(c, c): getattr(data, names.get(c, c)) for c in data.changed}


def _project(w: World, e: EventEnvelope) -> None:
    """What ``AnnotationsProjector`` does in SQL, on the world."""
    data, key, at, v = e.data, e.stream_id, e.occurred_at, e.version
    if isinstance(data, api.AnnotationClassCreated | api.AnnotationClassUpdated):
        name = data.name if "name" in getattr(data, "changed", ["name"]) else None
        if name is not None and any(
            org == e.org_id and c.name == name and c.id != key for org, c in w.classes.values()
        ):
            raise Taken("annotation_classes_name")
    if isinstance(data, api.AnnotationClassCreated):
        view = api.AnnotationClassView(
            id=key,
            name=data.name,
            colour=data.colour,
            description=data.description,
            created_at=at,
            updated_at=at,
            version=v,
        )
        w.classes[key] = (e.org_id, view)
    elif isinstance(data, api.AnnotationClassUpdated):
        update_row(w.classes, key, **_changes(data), updated_at=at, version=v)
    elif isinstance(data, api.AnnotationClassDeleted):
        w.classes.pop(key, None)
    elif isinstance(data, api.AnnotationCreated):
        view = api.AnnotationView(
            id=key,
            device_id=data.device_id,
            class_id=data.class_id,
            from_=data.from_,
            to=data.to,
            sensor=data.sensor,
            text=data.text,
            tags=list(data.tags),
            created_at=at,
            updated_at=at,
            version=v,
        )
        w.annotations[key] = (e.org_id, view)
    elif isinstance(data, api.AnnotationUpdated):
        update_row(
            w.annotations, key, **_changes(data, _ANNOTATION_FIELDS), updated_at=at, version=v
        )
    elif isinstance(data, api.AnnotationDeleted):
        w.annotations.pop(key, None)
    elif isinstance(data, api.ReadingsSettingsChanged):
        w.settings[e.org_id] = SettingsRow(data.auto_declare_sensors, data.retention_days, v, at)


def _meets(view: api.AnnotationView, start: datetime | None, end: datetime | None) -> bool:
    return (start is None or view.to >= start) and (end is None or view.from_ < end)


class FakeTx(FakeUnitOfWork[World]):
    """One transaction of ``FakeAnnotations``; ``tenant`` plays row-level security."""

    def project(self, envelope: EventEnvelope) -> None:
        _project(self.w, envelope)

    def _classes(self) -> list[api.AnnotationClassView]:
        return [c for org, c in self.w.classes.values() if self.visible(org)]

    def _annotations(self) -> list[api.AnnotationView]:
        return [a for org, a in self.w.annotations.values() if self.visible(org)]

    async def annotation_class(self, class_id: UUID) -> api.AnnotationClassView | None:
        return next((c for c in self._classes() if c.id == class_id), None)

    async def classes(self, query: ListQuery) -> Page[api.AnnotationClassView]:
        return first_page(self._classes(), query, key=lambda c: c.id)

    async def class_name_taken(self, name: str, own_id: UUID | None) -> bool:
        return any(c.name == name and c.id != own_id for c in self._classes())

    async def lock_class(self, class_id: UUID, *, exclusive: bool) -> bool:
        return await self.annotation_class(class_id) is not None  # one test task: no race

    async def annotations_of_class(self, class_id: UUID) -> int:
        return sum(1 for a in self._annotations() if a.class_id == class_id)

    async def device_in_registry(self, device_id: UUID) -> bool:
        org = self.w.devices.get(device_id)
        return org is not None and self.visible(org)

    async def annotation(self, annotation_id: UUID) -> api.AnnotationView | None:
        return next((a for a in self._annotations() if a.id == annotation_id), None)

    async def annotations(self, query: ListQuery, window: Window) -> Page[api.AnnotationView]:
        found = [
            a
            for a in self._annotations()
            if (window.device_id is None or a.device_id == window.device_id)
            and _meets(a, window.start, window.end)
        ]
        return first_page(found, query, key=lambda a: a.id)

    async def annotations_of_devices(
        self,
        device_ids: Sequence[UUID],
        start: datetime,
        end: datetime,
        after: UUID | None,
        limit: int,
    ) -> list[api.AnnotationView]:
        found = sorted(
            (
                a
                for a in self._annotations()
                if a.device_id in device_ids
                and _meets(a, start, end)
                and (after is None or a.id > after)
            ),
            key=lambda a: a.id,
        )
        return found[:limit]

    async def settings(self) -> SettingsRow | None:
        return None if self.tenant is None else self.w.settings.get(self.tenant)


class FakeAnnotations(FakeUnitOfWorkFactory[World, FakeTx]):
    """The ``AnnotationsUnitOfWork`` of the unit tests: ``world`` is what Postgres would
    hold."""

    def __init__(self) -> None:
        super().__init__(World(), FakeTx)
