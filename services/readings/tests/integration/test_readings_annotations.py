"""Annotations, annotation classes and readings settings against real Postgres: the
collection conventions, the overlap filter, If-Match, a class in use, tenant isolation, the
events in the event store and the outbox, and the settings deciding ingest's auto-declare."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest

from outpost_contracts import annotations as api
from outpost_contracts.devices import DeviceRegistered
from outpost_contracts.envelope import EventEnvelope, Principal, PrincipalKind, RequestContext
from outpost_contracts.errors import (
    Conflict,
    NotFound,
    PreconditionFailed,
    ValidationFailed,
)
from outpost_contracts.query import And, Cmp, ListQuery, OrderBy
from outpost_contracts.readings import TelemetryMessage, TelemetryReading
from outpost_kit import ids
from outpost_kit.cli import migrations_dir
from outpost_kit.db.engine import create_engine
from outpost_kit.db.eventstore import EventCodec
from outpost_kit.db.migrate import upgrade
from outpost_kit.db.provision import provision_service
from outpost_kit.db.uow import UnitOfWorkFactory
from outpost_readings import bootstrap
from outpost_readings.adapters.annotation_store import AnnotationsProjector, PgAnnotations
from outpost_readings.app import annotations as app
from outpost_readings.app import handlers
from outpost_readings.domain.readings import Limits

pytestmark = pytest.mark.integration

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def at(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


def ctx_of(org: uuid.UUID) -> RequestContext:
    principal = Principal(kind=PrincipalKind.API_KEY, id=ids.new_id(), org_id=org, scopes=("*",))
    return RequestContext(request_id=secrets.token_hex(16), org_id=org, principal=principal)


class Env:
    def __init__(self, deps: app.AnnotationDeps, ingest: handlers.Deps) -> None:
        self.deps = deps
        self.ingest = ingest
        self.confirmed: set[uuid.UUID] = set()  # devices the devices service would confirm

    async def device(self, org: uuid.UUID) -> uuid.UUID:
        device = ids.new_id()
        envelope = EventEnvelope(
            id=ids.new_id(),
            org_id=org,
            stream_id=device,
            stream_type="device",
            version=1,
            occurred_at=ids.now(),
            data=DeviceRegistered(name=f"d-{device}"),
        )
        async with self.ingest.uow(org) as uow:
            await handlers.on_device_event(uow, envelope)
            await uow.commit()
        return device

    async def call(self, handler: Any, org: uuid.UUID, body: Any) -> Any:
        return await handler(self.deps, ctx_of(org), body)

    async def rows(self, org: uuid.UUID | None, sql: str, **params: Any) -> list[Any]:
        async with self.deps.uow(org) as uow:
            return list(await uow.execute(sql, params))


@pytest.fixture
async def env(postgres_dsn: str) -> AsyncIterator[Env]:
    dsn = await provision_service(postgres_dsn, "readings", secrets.token_urlsafe(16))
    await upgrade(postgres_dsn, "readings", migrations_dir(bootstrap.__file__))
    engine = create_engine(dsn, "readings", pool_size=4)
    uow = UnitOfWorkFactory(engine, EventCodec(api.EVENT_TYPES), (AnnotationsProjector(),))
    confirmed: set[uuid.UUID] = set()

    async def exists(ctx: Any, device_id: uuid.UUID) -> bool:
        return device_id in confirmed

    deps = app.AnnotationDeps(uow=PgAnnotations.over(uow), device_exists=exists, retention_days=90)
    ingest = handlers.Deps(uow=uow, limits=Limits(), device_exists=exists)
    e = Env(deps, ingest)
    e.confirmed = confirmed
    try:
        yield e
    finally:
        await engine.dispose()


async def _class(env: Env, org: uuid.UUID, name: str, **extra: Any) -> api.AnnotationClassView:
    return await env.call(  # type: ignore[no-any-return]
        app.create_class, org, api.CreateAnnotationClass(name=name, **extra)
    )


async def _annotate(
    env: Env,
    org: uuid.UUID,
    device: uuid.UUID,
    klass: uuid.UUID,
    start: float,
    end: float,
    **kw: Any,
) -> api.AnnotationView:
    body = api.CreateAnnotation(device_id=device, class_id=klass, from_=at(start), to=at(end), **kw)
    return await env.call(app.create_annotation, org, body)  # type: ignore[no-any-return]


async def _query(env: Env, org: uuid.UUID, **kw: Any) -> list[api.AnnotationView]:
    page = await env.call(app.query_annotations, org, api.QueryAnnotations(**kw))
    return list(page.data)


async def test_classes_follow_the_collection_conventions_and_names_are_per_tenant(
    env: Env,
) -> None:
    org, other = ids.new_id(), ids.new_id()
    made = [await _class(env, org, f"c{i}", colour="#ff0000") for i in range(5)]
    # The same name in another organization is fine; in the same one, 409.
    await _class(env, other, "c0")
    with pytest.raises(Conflict):
        await _class(env, org, "c0")
    assert made[0].version == 1 and made[0].colour == "#ff0000"
    first = await env.call(
        app.list_classes,
        org,
        api.ListAnnotationClasses(query=ListQuery(limit=2, include_total=True)),
    )
    assert [c.name for c in first.data] == ["c0", "c1"] and first.has_more
    assert first.total_count == 5
    rest = await env.call(
        app.list_classes,
        org,
        api.ListAnnotationClasses(query=ListQuery(limit=10, after=str(made[1].id))),
    )
    assert [c.name for c in rest.data] == ["c2", "c3", "c4"] and not rest.has_more
    named = await env.call(
        app.list_classes,
        org,
        api.ListAnnotationClasses(
            query=ListQuery(
                filter=Cmp(field="name", op="in", value=["c1", "c3"]),
                order_by=[OrderBy(field="name", desc=True)],
            )
        ),
    )
    assert [c.name for c in named.data] == ["c3", "c1"]
    with pytest.raises(ValidationFailed) as unknown:
        await env.call(
            app.list_classes,
            org,
            api.ListAnnotationClasses(query=ListQuery(filter=Cmp(field="org", op="eq", value="x"))),
        )
    assert unknown.value.fields[0].name == "org"
    # Another organization's class is invisible: 404 on every route.
    for call, body in [
        (app.get_class, api.GetById(id=made[0].id)),
        (
            app.update_class,
            api.UpdateAnnotationClass(id=made[0].id, patch=api.AnnotationClassPatch(name="x")),
        ),
        (app.delete_class, api.DeleteById(id=made[0].id)),
    ]:
        with pytest.raises(NotFound):
            await env.call(call, other, body)


async def test_if_match_and_a_class_in_use(env: Env) -> None:
    org = ids.new_id()
    device = await env.device(org)
    klass = await _class(env, org, "maintenance")
    renamed = await env.call(
        app.update_class,
        org,
        api.UpdateAnnotationClass(
            id=klass.id,
            patch=api.AnnotationClassPatch(name="service", description="planned"),
            expected_version=1,
        ),
    )
    assert (renamed.name, renamed.description, renamed.version) == ("service", "planned", 2)
    with pytest.raises(PreconditionFailed):
        await env.call(
            app.update_class,
            org,
            api.UpdateAnnotationClass(
                id=klass.id, patch=api.AnnotationClassPatch(colour="#00ff00"), expected_version=1
            ),
        )
    note = await _annotate(env, org, device, klass.id, 0, 2, text="pump swap")
    with pytest.raises(Conflict) as used:
        await env.call(app.delete_class, org, api.DeleteById(id=klass.id))
    assert used.value.details == {"annotationCount": 1}
    # The annotation: If-Match on update and delete, then the class can go.
    with pytest.raises(PreconditionFailed):
        await env.call(
            app.update_annotation,
            org,
            api.UpdateAnnotation(
                id=note.id, patch=api.AnnotationPatch(text="x"), expected_version=7
            ),
        )
    moved = await env.call(
        app.update_annotation,
        org,
        api.UpdateAnnotation(
            id=note.id,
            patch=api.AnnotationPatch(to=at(3), tags=[{"key": "crew", "value": "b"}]),  # type: ignore[list-item]
            expected_version=1,
        ),
    )
    assert (moved.to, moved.version, moved.tags[0].key) == (at(3), 2, "crew")
    with pytest.raises(ValidationFailed):  # to before from, checked on the patched state
        await env.call(
            app.update_annotation,
            org,
            api.UpdateAnnotation(id=note.id, patch=api.AnnotationPatch(to=at(-1))),
        )
    with pytest.raises(PreconditionFailed):
        await env.call(app.delete_annotation, org, api.DeleteById(id=note.id, expected_version=1))
    await env.call(app.delete_annotation, org, api.DeleteById(id=note.id, expected_version=2))
    with pytest.raises(NotFound):
        await env.call(app.get_annotation, org, api.GetById(id=note.id))
    await env.call(app.delete_class, org, api.DeleteById(id=klass.id, expected_version=2))
    with pytest.raises(NotFound):
        await env.call(app.get_class, org, api.GetById(id=klass.id))
    # Every change is an event on the aggregate's stream, with its outbox row.
    types = [
        r.event_type for r in await env.rows(org, "SELECT event_type FROM events ORDER BY position")
    ]
    assert types == [
        "readings.AnnotationClassCreated.v1",
        "readings.AnnotationClassUpdated.v1",
        "readings.AnnotationCreated.v1",
        "readings.AnnotationUpdated.v1",
        "readings.AnnotationDeleted.v1",
        "readings.AnnotationClassDeleted.v1",
    ]
    # ... each with its outbox row (no relay runs here: the rows stay).
    async with env.deps.uow(org) as uow:
        event_ids = [r.event_id for r in await uow.execute("SELECT event_id FROM events")]
        outbox = await uow.execute(
            "SELECT subject FROM outbox WHERE event_id = ANY(:ids) ORDER BY position",
            {"ids": event_ids},
        )
        subjects = [r.subject for r in outbox]
    assert subjects == [f"outpost.evt.readings.{org}.{t.split('.')[1]}.v1" for t in types]


async def test_annotations_need_the_tenants_device_and_class(env: Env) -> None:
    org, other = ids.new_id(), ids.new_id()
    device, foreign = await env.device(org), await env.device(other)
    klass = await _class(env, org, "k")
    foreign_class = await _class(env, other, "k")
    with pytest.raises(ValidationFailed) as bad:
        await _annotate(env, org, foreign, klass.id, 0, 1)
    assert bad.value.fields[0].name == "deviceId"
    with pytest.raises(ValidationFailed) as bad:
        await _annotate(env, org, device, foreign_class.id, 0, 1)
    assert bad.value.fields[0].name == "classId"
    with pytest.raises(ValidationFailed) as bad:
        await _annotate(env, org, device, klass.id, 2, 1)
    assert bad.value.fields[0].name == "from"
    # A device the registry does not know yet but the devices service confirms.
    fresh = ids.new_id()
    env.confirmed.add(fresh)
    made = await _annotate(env, org, fresh, klass.id, 0, 0)  # an instant
    assert made.from_ == made.to
    assert await env.rows(org, "SELECT count(*) AS n FROM annotations") == [(1,)]


async def test_the_overlap_filter_device_route_and_export_listing(env: Env) -> None:
    org, other = ids.new_id(), ids.new_id()
    a, b = await env.device(org), await env.device(org)
    theirs = await env.device(other)
    k1, k2 = await _class(env, org, "k1"), await _class(env, org, "k2")
    k_other = await _class(env, other, "k1")
    spans = {
        "early": (0, 1),
        "around": (1.5, 5),
        "inside": (2, 3),
        "instant": (4, 4),
        "late": (6, 7),
    }
    made = {
        name: await _annotate(
            env, org, a, (k1 if name != "inside" else k2).id, s, e, text=name, sensor="temp"
        )
        for name, (s, e) in spans.items()
    }
    on_b = await _annotate(
        env, org, b, k1.id, 2, 3, text="b", tags=[{"key": "shift", "value": "n"}]
    )  # type: ignore[list-item]
    await _annotate(env, other, theirs, k_other.id, 0, 10, text="theirs")

    def texts(found: list[api.AnnotationView]) -> list[str | None]:
        return [x.text for x in found]

    # [2h, 4h): everything whose [from, to] meets it; an instant at 4h does not (half-open).
    assert texts(await _query(env, org, from_=at(2), to=at(4))) == ["around", "inside", "b"]
    assert texts(await _query(env, org, from_=at(4))) == ["around", "instant", "late"]
    assert texts(await _query(env, org, to=at(1))) == ["early"]
    # A touching end is an overlap: early is [0, 1], the window starts at 1.
    assert texts(await _query(env, org, from_=at(1), to=at(1.5))) == ["early"]
    with pytest.raises(ValidationFailed):
        await _query(env, org, from_=at(3), to=at(2))
    # The device's own route; another organization's device is 404.
    assert texts(await _query(env, org, device_id=b)) == ["b"]
    with pytest.raises(NotFound):
        await _query(env, org, device_id=theirs)
    # Filters and OData compile to one tree: class, sensor, tags/any, text.
    by_class = await _query(
        env, org, query=ListQuery(filter=Cmp(field="classId", op="eq", value=str(k2.id)))
    )
    assert texts(by_class) == ["inside"]
    from outpost_contracts.query import AnyOf

    tagged = await _query(
        env,
        org,
        query=ListQuery(
            filter=AnyOf(relation="tags", predicate=Cmp(field="key", op="eq", value="shift"))
        ),
    )
    assert [x.id for x in tagged] == [on_b.id]
    late_from = await _query(
        env,
        org,
        query=ListQuery(
            filter=And(
                items=[
                    Cmp(field="from", op="ge", value=at(4).isoformat()),
                    Cmp(field="deviceId", op="eq", value=str(a)),
                ]
            ),
            include_total=True,
        ),
    )
    assert texts(late_from) == ["instant", "late"]
    page = await env.call(
        app.query_annotations,
        org,
        api.QueryAnnotations(query=ListQuery(limit=2, order="DESC", include_total=True)),
    )
    assert page.total_count == 6 and page.has_more
    assert [x.id for x in page.data] == [on_b.id, made["late"].id]
    # The exports' internal listing: devices and a window, by id, in pages; other tenants' none.
    seen: list[str | None] = []
    after = None
    while True:
        got = await env.call(
            app.list_annotations,
            org,
            api.ListAnnotations(
                device_ids=[a, b, theirs], from_=at(2), to=at(6.5), limit=2, after=after
            ),
        )
        seen.extend(x.text for x in got.data)
        if not got.has_more:
            break
        after = uuid.UUID(got.after)
    assert seen == ["around", "inside", "instant", "late", "b"]
    # Another organization sees none of this organization's annotations.
    assert texts(await _query(env, other)) == ["theirs"]
    for note in made.values():
        with pytest.raises(NotFound):
            await env.call(app.get_annotation, other, api.GetById(id=note.id))


async def test_settings_default_put_if_match_and_ingest_auto_declare(env: Env) -> None:
    org = ids.new_id()
    device = await env.device(org)
    got = await env.call(app.get_settings, org, api.GetReadingsSettings())
    assert (got.auto_declare_sensors, got.retention_days, got.retention_default, got.version) == (
        True,
        90,
        True,
        0,
    )

    async def ingest(sensor: str, seconds: int) -> handlers.Outcome:
        now = datetime.now(UTC)
        item = handlers.Incoming(
            org_id=org,
            device_id=device,
            message=TelemetryMessage(
                seq=seconds,
                readings=[
                    TelemetryReading(sensor=sensor, value=1.5, ts=now - timedelta(seconds=seconds))
                ],
            ),
            arrival=now,
        )
        [outcome] = await handlers.ingest(env.ingest, [item], now)
        return outcome

    assert (await ingest("auto-on", 10)).stored == 1  # the default: auto-declared
    off = api.SetReadingsSettings(
        settings=api.PutReadingsSettings(auto_declare_sensors=False, retention_days=30),
        expected_version=0,
    )
    put = await env.call(app.set_settings, org, off)
    assert (put.auto_declare_sensors, put.retention_days, put.retention_default, put.version) == (
        False,
        30,
        False,
        1,
    )
    with pytest.raises(PreconditionFailed):  # the same If-Match again: it moved on
        await env.call(app.set_settings, org, off)
    assert (await ingest("auto-off", 20)).rejected == 1  # now refused: unknown_sensor
    reasons = await env.rows(org, "SELECT reason FROM quarantine WHERE sensor = 'auto-off'")
    assert [r.reason for r in reasons] == ["unknown_sensor"]
    back = await env.call(
        app.set_settings,
        org,
        api.SetReadingsSettings(
            settings=api.PutReadingsSettings(auto_declare_sensors=True, retention_days=None)
        ),
    )
    assert (back.retention_days, back.retention_default, back.version) == (90, True, 2)
    assert (await ingest("auto-again", 30)).stored == 1
    # The same PUT again changes nothing and records nothing.
    same = await env.call(
        app.set_settings,
        org,
        api.SetReadingsSettings(
            settings=api.PutReadingsSettings(auto_declare_sensors=True, retention_days=None)
        ),
    )
    assert same.version == 2
    events = await env.rows(
        org,
        "SELECT data->>'changed' AS changed FROM events"
        " WHERE event_type = 'readings.ReadingsSettingsChanged.v1' ORDER BY version",
    )
    assert [msgspec.json.decode(r.changed) for r in events] == [
        ["autoDeclareSensors", "retentionDays"],
        ["autoDeclareSensors", "retentionDays"],
    ]
    # Bounds are the contract's: a validation error at decode, before any handler.
    for days in (0, 3651):
        with pytest.raises(msgspec.ValidationError):
            msgspec.convert(
                {"autoDeclareSensors": True, "retentionDays": days}, api.PutReadingsSettings
            )
    # Another organization's settings are its own.
    other = await env.call(app.get_settings, ids.new_id(), api.GetReadingsSettings())
    assert other.version == 0 and other.auto_declare_sensors
