"""Use cases of annotation classes, annotations and an organization's readings settings, and
their handler table (merged with readings' own in entrypoints/rpc.py).

Every change goes load → decide → append through the kit's event store: the events go to
the READINGS stream through the outbox and into the audit log, the read models are written
in the same transaction (adapters/annotation_store.py)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from outpost_contracts import annotations as api
from outpost_contracts.base import Empty
from outpost_contracts.envelope import RequestContext
from outpost_contracts.errors import Conflict, NotFound, ValidationFailed, validation_error
from outpost_contracts.query import Page
from outpost_contracts.rpc import Operation
from outpost_kit import aggregate, ids
from outpost_readings.app.ports import AnnotationsTx, AnnotationsUnitOfWork, SettingsRow, Window
from outpost_readings.domain import annotations as domain

DeviceExists = Callable[[RequestContext, UUID], Awaitable[bool]]


@dataclass(frozen=True)
class AnnotationDeps:
    uow: AnnotationsUnitOfWork
    # Asks the devices service: the local registry can be a moment behind a registration.
    device_exists: DeviceExists
    # The deployment's defaults, for an organization that has not set its own.
    auto_declare_sensors: bool = True
    retention_days: int = 365


CLASSES = aggregate.Aggregate(domain.ANNOTATION_CLASS, domain.decide_class, domain.evolve_class)
ANNOTATIONS = aggregate.Aggregate(
    domain.ANNOTATION, domain.decide_annotation, domain.evolve_annotation
)
SETTINGS = aggregate.Aggregate(
    domain.READINGS_SETTINGS, domain.decide_settings, domain.evolve_settings
)


async def _require(uow: AnnotationsTx, kind: aggregate.Aggregate, key: UUID, noun: str) -> Any:
    """404 before anything else (If-Match included) for what this tenant cannot see."""
    state, _version = await kind.load(uow, key)
    if state is None or state.deleted:
        raise NotFound(f"no such {noun}")
    return state


# --- annotation classes -----------------------------------------------------------------


def _taken(name: str) -> Conflict:
    return Conflict(f"an annotation class named '{name}' already exists")


async def create_class(
    deps: AnnotationDeps, ctx: RequestContext, cmd: api.CreateAnnotationClass
) -> api.AnnotationClassView:
    new_id = ids.new_id()
    async with deps.uow(ctx.org_id) as uow:
        if await uow.class_name_taken(cmd.name, None):
            raise _taken(cmd.name)
        try:
            await CLASSES.execute(uow, ctx, stream_id=new_id, command=cmd, org_id=ctx.org_id)
        except aggregate.Taken as exc:  # a concurrent create took the name
            raise _taken(cmd.name) from exc
        view = await uow.annotation_class(new_id)
        await uow.commit()
    assert view is not None
    return view


async def get_class(
    deps: AnnotationDeps, ctx: RequestContext, q: api.GetById
) -> api.AnnotationClassView:
    async with deps.uow(ctx.org_id) as uow:
        view = await uow.annotation_class(q.id)
    if view is None:
        raise NotFound("no such annotation class")
    return view


async def list_classes(
    deps: AnnotationDeps, ctx: RequestContext, q: api.ListAnnotationClasses
) -> Page[api.AnnotationClassView]:
    async with deps.uow(ctx.org_id) as uow:
        return await uow.classes(q.query)


async def update_class(
    deps: AnnotationDeps, ctx: RequestContext, cmd: api.UpdateAnnotationClass
) -> api.AnnotationClassView:
    name = cmd.patch.name
    async with deps.uow(ctx.org_id) as uow:
        await _require(uow, CLASSES, cmd.id, "annotation class")
        if isinstance(name, str) and await uow.class_name_taken(name, cmd.id):
            raise _taken(name)
        try:
            await CLASSES.execute(
                uow,
                ctx,
                stream_id=cmd.id,
                command=cmd.patch,
                org_id=ctx.org_id,
                expected_version=cmd.expected_version,
            )
        except aggregate.Taken as exc:
            raise _taken(str(name)) from exc
        view = await uow.annotation_class(cmd.id)
        await uow.commit()
    assert view is not None
    return view


async def delete_class(deps: AnnotationDeps, ctx: RequestContext, cmd: api.DeleteById) -> Empty:
    """Refused with 409 while an annotation has the class: deleting it would leave labels
    without a meaning (or delete a user's annotations by surprise). The class's row is
    locked first so no annotation can start using it meanwhile."""
    async with deps.uow(ctx.org_id) as uow:
        await _require(uow, CLASSES, cmd.id, "annotation class")
        await uow.lock_class(cmd.id, exclusive=True)
        used = await uow.annotations_of_class(cmd.id)
        if used:
            raise Conflict(
                f"the annotation class is used by {used} annotation(s): delete them or move"
                " them to another class first",
                details={"annotationCount": used},
            )
        await CLASSES.execute(
            uow,
            ctx,
            stream_id=cmd.id,
            command=domain.Delete(),
            org_id=ctx.org_id,
            expected_version=cmd.expected_version,
        )
        await uow.commit()
    return Empty()


# --- annotations ------------------------------------------------------------------------


async def _require_device(
    deps: AnnotationDeps, uow: AnnotationsTx, ctx: RequestContext, device_id: UUID, field: str
) -> None:
    """The device must be the tenant's: in readings' registry (under RLS), or confirmed by
    the devices service when the registry has not caught up with its registration yet."""
    if await uow.device_in_registry(device_id):
        return
    if not await deps.device_exists(ctx, device_id):
        raise validation_error(field, "no such device in this organization")


async def _require_class(uow: AnnotationsTx, class_id: UUID) -> None:
    if not await uow.lock_class(class_id, exclusive=False):
        raise validation_error("classId", "no such annotation class in this organization")


async def create_annotation(
    deps: AnnotationDeps, ctx: RequestContext, cmd: api.CreateAnnotation
) -> api.AnnotationView:
    new_id = ids.new_id()
    async with deps.uow(ctx.org_id) as uow:
        await _require_device(deps, uow, ctx, cmd.device_id, "deviceId")
        await _require_class(uow, cmd.class_id)
        await ANNOTATIONS.execute(uow, ctx, stream_id=new_id, command=cmd, org_id=ctx.org_id)
        view = await uow.annotation(new_id)
        await uow.commit()
    assert view is not None
    return view


async def get_annotation(
    deps: AnnotationDeps, ctx: RequestContext, q: api.GetById
) -> api.AnnotationView:
    async with deps.uow(ctx.org_id) as uow:
        view = await uow.annotation(q.id)
    if view is None:
        raise NotFound("no such annotation")
    return view


def _window(start: datetime | None, end: datetime | None) -> None:
    start = None if start is None else domain.in_utc(start, "from")
    end = None if end is None else domain.in_utc(end, "to")
    if start is not None and end is not None and start >= end:
        raise validation_error("from", "must be before 'to'")


async def query_annotations(
    deps: AnnotationDeps, ctx: RequestContext, q: api.QueryAnnotations
) -> Page[api.AnnotationView]:
    """The collection, narrowed to a device (its own route) and to the annotations whose
    range overlaps ``[from, to)``."""
    _window(q.from_, q.to)
    async with deps.uow(ctx.org_id) as uow:
        if q.device_id is not None:
            try:
                await _require_device(deps, uow, ctx, q.device_id, "id")
            except ValidationFailed as exc:
                raise NotFound("no such device") from exc
        return await uow.annotations(q.query, Window(q.device_id, q.from_, q.to))


async def list_annotations(
    deps: AnnotationDeps, ctx: RequestContext, q: api.ListAnnotations
) -> Page[api.AnnotationView]:
    """For exports: the annotations of some devices overlapping ``[from, to)``, by id."""
    _window(q.from_, q.to)
    async with deps.uow(ctx.org_id) as uow:
        views = await uow.annotations_of_devices(
            sorted(set(q.device_ids)), q.from_, q.to, q.after, q.limit + 1
        )
    has_more = len(views) > q.limit
    views = views[: q.limit]
    return Page(
        data=views,
        limit=q.limit,
        has_more=has_more,
        after=str(views[-1].id) if has_more and views else None,
    )


async def update_annotation(
    deps: AnnotationDeps, ctx: RequestContext, cmd: api.UpdateAnnotation
) -> api.AnnotationView:
    async with deps.uow(ctx.org_id) as uow:
        await _require(uow, ANNOTATIONS, cmd.id, "annotation")
        if isinstance(cmd.patch.class_id, UUID):
            await _require_class(uow, cmd.patch.class_id)
        await ANNOTATIONS.execute(
            uow,
            ctx,
            stream_id=cmd.id,
            command=cmd.patch,
            org_id=ctx.org_id,
            expected_version=cmd.expected_version,
        )
        view = await uow.annotation(cmd.id)
        await uow.commit()
    assert view is not None
    return view


async def delete_annotation(
    deps: AnnotationDeps, ctx: RequestContext, cmd: api.DeleteById
) -> Empty:
    async with deps.uow(ctx.org_id) as uow:
        await _require(uow, ANNOTATIONS, cmd.id, "annotation")
        await ANNOTATIONS.execute(
            uow,
            ctx,
            stream_id=cmd.id,
            command=domain.Delete(),
            org_id=ctx.org_id,
            expected_version=cmd.expected_version,
        )
        await uow.commit()
    return Empty()


# --- an organization's readings settings -------------------------------------------------


def _settings_view(deps: AnnotationDeps, row: SettingsRow | None) -> api.ReadingsSettings:
    if row is None:
        return api.ReadingsSettings(
            auto_declare_sensors=deps.auto_declare_sensors,
            retention_days=deps.retention_days,
            retention_default=True,
            version=0,
        )
    own = row.retention_days
    return api.ReadingsSettings(
        auto_declare_sensors=row.auto_declare_sensors,
        retention_days=deps.retention_days if own is None else own,
        retention_default=own is None,
        version=row.version,
        updated_at=row.updated_at,
    )


async def get_settings(
    deps: AnnotationDeps, ctx: RequestContext, q: api.GetReadingsSettings
) -> api.ReadingsSettings:
    async with deps.uow(ctx.org_id) as uow:
        row = await uow.settings()
    return _settings_view(deps, row)


async def set_settings(
    deps: AnnotationDeps, ctx: RequestContext, cmd: api.SetReadingsSettings
) -> api.ReadingsSettings:
    """Replace the organization's settings. Ingest reads ``autoDeclareSensors`` from the
    projection (``org_settings``) in its next batch; retention its ``retentionDays`` at its
    next run."""
    org = ctx.org_id
    async with deps.uow(org) as uow:
        await SETTINGS.execute(
            uow,
            ctx,
            stream_id=domain.settings_stream(org),
            command=cmd.settings,
            org_id=org,
            expected_version=cmd.expected_version,
        )
        row = await uow.settings()
        await uow.commit()
    return _settings_view(deps, row)


Handler = Callable[[AnnotationDeps, RequestContext, Any], Awaitable[Any]]

HANDLERS: dict[Operation[Any, Any], Handler] = {
    api.CREATE_ANNOTATION_CLASS: create_class,
    api.GET_ANNOTATION_CLASS: get_class,
    api.LIST_ANNOTATION_CLASSES: list_classes,
    api.UPDATE_ANNOTATION_CLASS: update_class,
    api.DELETE_ANNOTATION_CLASS: delete_class,
    api.CREATE_ANNOTATION: create_annotation,
    api.GET_ANNOTATION: get_annotation,
    api.QUERY_ANNOTATIONS: query_annotations,
    api.LIST_ANNOTATIONS: list_annotations,
    api.UPDATE_ANNOTATION: update_annotation,
    api.DELETE_ANNOTATION: delete_annotation,
    api.GET_READINGS_SETTINGS: get_settings,
    api.SET_READINGS_SETTINGS: set_settings,
}
