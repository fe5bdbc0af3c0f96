"""Readings' annotation use cases over the fake unit of work (``readings_fakes.py``), no
Postgres: a class name once per organization (a racing create included), a class in use
kept, what an annotation's creation checks before it appends, the export listing's pages
and the settings' defaults."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from readings_fakes import FakeAnnotations

from outpost_contracts import annotations as api
from outpost_contracts.errors import Conflict, ValidationFailed
from outpost_devkit.testing.fakes import api_key_context as _ctx
from outpost_readings.app import annotations as app

pytestmark = pytest.mark.unit

T0 = datetime(2025, 1, 1, tzinfo=UTC)


@pytest.fixture
def fake() -> FakeAnnotations:
    return FakeAnnotations()


@pytest.fixture
def confirmed() -> set[uuid.UUID]:
    """The devices the devices service confirms (the local registry not caught up)."""
    return set()


@pytest.fixture
def deps(fake: FakeAnnotations, confirmed: set[uuid.UUID]) -> app.AnnotationDeps:
    async def exists(_ctx: Any, device_id: uuid.UUID) -> bool:
        return device_id in confirmed

    return app.AnnotationDeps(uow=fake, device_exists=exists, retention_days=90)


def _note(device: uuid.UUID, class_id: uuid.UUID, hours: int = 0) -> api.CreateAnnotation:
    start = T0 + timedelta(hours=hours)
    return api.CreateAnnotation(
        device_id=device, class_id=class_id, from_=start, to=start + timedelta(minutes=30)
    )


async def test_a_class_name_is_taken_once_per_organization_even_by_a_racing_create(
    fake: FakeAnnotations, deps: app.AnnotationDeps, monkeypatch: pytest.MonkeyPatch
) -> None:
    org, other = uuid.uuid4(), uuid.uuid4()
    await app.create_class(deps, _ctx(org), api.CreateAnnotationClass(name="maintenance"))
    with pytest.raises(Conflict):
        await app.create_class(deps, _ctx(org), api.CreateAnnotationClass(name="maintenance"))
    await app.create_class(deps, _ctx(other), api.CreateAnnotationClass(name="maintenance"))

    async def not_yet(*_args: Any) -> bool:  # the racing create commits after our check
        return False

    monkeypatch.setattr("readings_fakes.FakeTx.class_name_taken", not_yet)
    with pytest.raises(Conflict):
        await app.create_class(deps, _ctx(org), api.CreateAnnotationClass(name="maintenance"))
    page = await app.list_classes(deps, _ctx(org), api.ListAnnotationClasses())
    assert [c.name for c in page.data] == ["maintenance"]


async def test_a_class_in_use_is_kept_until_its_annotations_go(
    fake: FakeAnnotations, deps: app.AnnotationDeps
) -> None:
    org, device = uuid.uuid4(), uuid.uuid4()
    fake.world.devices[device] = org
    ctx = _ctx(org)
    used = await app.create_class(deps, ctx, api.CreateAnnotationClass(name="fault"))
    note = await app.create_annotation(deps, ctx, _note(device, used.id))
    with pytest.raises(Conflict) as refused:
        await app.delete_class(deps, ctx, api.DeleteById(id=used.id))
    assert refused.value.details == {"annotationCount": 1}
    assert (await app.get_class(deps, ctx, api.GetById(id=used.id))).version == 1
    await app.delete_annotation(deps, ctx, api.DeleteById(id=note.id))
    await app.delete_class(deps, ctx, api.DeleteById(id=used.id))
    assert (await app.list_classes(deps, ctx, api.ListAnnotationClasses())).data == []


async def test_an_annotation_needs_the_tenants_device_and_class_and_a_refusal_appends_nothing(
    fake: FakeAnnotations, deps: app.AnnotationDeps, confirmed: set[uuid.UUID]
) -> None:
    org, other = uuid.uuid4(), uuid.uuid4()
    ctx = _ctx(org)
    theirs, registered, new = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    fake.world.devices.update({theirs: other, registered: org})
    klass = await app.create_class(deps, ctx, api.CreateAnnotationClass(name="fault"))
    foreign = await app.create_class(deps, _ctx(other), api.CreateAnnotationClass(name="x"))
    streams = len(fake.world.streams)
    with pytest.raises(ValidationFailed):
        await app.create_annotation(deps, ctx, _note(theirs, klass.id))
    with pytest.raises(ValidationFailed):
        await app.create_annotation(deps, ctx, _note(registered, foreign.id))
    assert len(fake.world.streams) == streams
    await app.create_annotation(deps, ctx, _note(registered, klass.id))
    confirmed.add(new)  # not in readings' registry yet, but the devices service knows it
    await app.create_annotation(deps, ctx, _note(new, klass.id))


async def test_the_export_listing_pages_by_id_within_the_window(
    fake: FakeAnnotations, deps: app.AnnotationDeps
) -> None:
    org, device, elsewhere = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    fake.world.devices.update({device: org, elsewhere: org})
    ctx = _ctx(org)
    klass = await app.create_class(deps, ctx, api.CreateAnnotationClass(name="fault"))
    made = [await app.create_annotation(deps, ctx, _note(device, klass.id, h)) for h in range(3)]
    await app.create_annotation(deps, ctx, _note(elsewhere, klass.id))
    late = await app.create_annotation(deps, ctx, _note(device, klass.id, 48))
    wanted = sorted(a.id for a in made)

    def listing(after: uuid.UUID | None) -> api.ListAnnotations:
        return api.ListAnnotations(
            device_ids=[device], from_=T0, to=T0 + timedelta(days=1), limit=2, after=after
        )

    first = await app.list_annotations(deps, ctx, listing(None))
    assert [a.id for a in first.data] == wanted[:2] and first.has_more
    assert first.after == str(wanted[1])
    rest = await app.list_annotations(deps, ctx, listing(uuid.UUID(first.after)))
    assert [a.id for a in rest.data] == wanted[2:] and not rest.has_more and rest.after is None
    assert late.id not in {a.id for a in first.data + rest.data}


async def test_settings_are_the_deployments_until_the_organization_sets_its_own(
    deps: app.AnnotationDeps,
) -> None:
    org, other = uuid.uuid4(), uuid.uuid4()
    default = await app.get_settings(deps, _ctx(org), api.GetReadingsSettings())
    assert default.retention_days == 90 and default.retention_default and default.version == 0
    body = api.PutReadingsSettings(auto_declare_sensors=False, retention_days=30)
    own = await app.set_settings(deps, _ctx(org), api.SetReadingsSettings(settings=body))
    assert (own.retention_days, own.retention_default, own.auto_declare_sensors) == (
        30,
        False,
        False,
    )
    assert own == await app.get_settings(deps, _ctx(org), api.GetReadingsSettings())
    assert (await app.get_settings(deps, _ctx(other), api.GetReadingsSettings())).version == 0
