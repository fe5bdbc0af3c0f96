"""The annotation, annotation-class and settings deciders, and the retention plan: given
these events, when this command, then these events; no I/O."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta

import pytest

from outpost_contracts import annotations as api
from outpost_contracts.devices import Tag
from outpost_contracts.errors import Conflict, NotFound, ValidationFailed
from outpost_readings.domain import annotations as domain
from outpost_readings.domain.retention import Expiry, day_start, partition_day, plan

pytestmark = pytest.mark.unit

NOW = datetime(2026, 5, 1, tzinfo=UTC)
ID = uuid.UUID("0190a000-0000-7000-8000-000000000001")
DEVICE = uuid.UUID("0190a000-0000-7000-8000-000000000002")
KLASS = uuid.UUID("0190a000-0000-7000-8000-000000000003")


def fold(evolve, events):  # type: ignore[no-untyped-def]
    state = None
    for event in events:
        state = evolve(state, event, ID)
    return state


def test_a_class_is_created_renamed_and_deleted() -> None:
    created = domain.decide_class(None, api.CreateAnnotationClass(name="maintenance"), NOW)
    assert created == [api.AnnotationClassCreated(name="maintenance")]
    state = fold(domain.evolve_class, created)
    assert state.version == 1
    with pytest.raises(Conflict):
        domain.decide_class(state, api.CreateAnnotationClass(name="x"), NOW)
    patch = api.AnnotationClassPatch(name="maintenance", colour="#112233", description=None)
    changed = domain.decide_class(state, patch, NOW)
    # Only what differs: the name is the same, the description was already empty.
    assert changed == [api.AnnotationClassUpdated(changed=["colour"], colour="#112233")]
    state = fold(domain.evolve_class, [*created, *changed])
    assert (state.colour, state.version) == ("#112233", 2)
    assert domain.decide_class(state, api.AnnotationClassPatch(colour="#112233"), NOW) == []
    deleted = domain.decide_class(state, domain.Delete(), NOW)
    assert deleted == [api.AnnotationClassDeleted()]
    gone = fold(domain.evolve_class, [*created, *changed, *deleted])
    with pytest.raises(NotFound):
        domain.decide_class(gone, api.AnnotationClassPatch(name="y"), NOW)
    with pytest.raises(NotFound):
        domain.decide_class(None, domain.Delete(), NOW)


def _create(start: datetime, end: datetime) -> api.CreateAnnotation:
    return api.CreateAnnotation(
        device_id=DEVICE, class_id=KLASS, from_=start, to=end, sensor="temp", text="t"
    )


def test_an_annotation_keeps_from_before_to_on_create_and_on_the_patched_state() -> None:
    with pytest.raises(ValidationFailed) as bad:
        domain.decide_annotation(None, _create(NOW, NOW - timedelta(seconds=1)), NOW)
    assert bad.value.fields[0].name == "from"
    # An instant with no UTC form is refused, not a failure further down.
    far = datetime.fromisoformat("9999-12-31T23:59:59-14:00")
    with pytest.raises(ValidationFailed) as bad:
        domain.decide_annotation(None, _create(NOW, far), NOW)
    assert bad.value.fields[0].name == "to"
    instant = domain.decide_annotation(None, _create(NOW, NOW), NOW)
    assert isinstance(instant[0], api.AnnotationCreated) and instant[0].from_ == instant[0].to
    created = domain.decide_annotation(None, _create(NOW, NOW + timedelta(hours=1)), NOW)
    state = fold(domain.evolve_annotation, created)
    with pytest.raises(ValidationFailed):
        domain.decide_annotation(state, api.AnnotationPatch(from_=NOW + timedelta(hours=2)), NOW)
    moved = domain.decide_annotation(
        state,
        api.AnnotationPatch(
            from_=NOW + timedelta(hours=2), to=NOW + timedelta(hours=3), sensor=None
        ),
        NOW,
    )
    assert moved == [
        api.AnnotationUpdated(
            device_id=DEVICE,
            changed=["from", "to", "sensor"],
            from_=NOW + timedelta(hours=2),
            to=NOW + timedelta(hours=3),
            sensor=None,
        )
    ]
    state = fold(domain.evolve_annotation, [*created, *moved])
    assert (state.from_, state.sensor, state.version) == (NOW + timedelta(hours=2), None, 2)


def test_annotation_tags_and_text_patches_and_delete() -> None:
    created = domain.decide_annotation(None, _create(NOW, NOW), NOW)
    state = fold(domain.evolve_annotation, created)
    tags = [Tag(key="crew", value="b")]
    tagged = domain.decide_annotation(state, api.AnnotationPatch(tags=tags, text="t"), NOW)
    assert tagged == [api.AnnotationUpdated(device_id=DEVICE, changed=["tags"], tags=tags)]
    state = fold(domain.evolve_annotation, [*created, *tagged])
    assert state.tags == (Tag(key="crew", value="b"),)
    cleared = domain.decide_annotation(state, api.AnnotationPatch(tags=None), NOW)
    assert cleared == [api.AnnotationUpdated(device_id=DEVICE, changed=["tags"], tags=[])]
    deleted = domain.decide_annotation(state, domain.Delete(), NOW)
    assert deleted == [api.AnnotationDeleted(device_id=DEVICE)]
    gone = fold(domain.evolve_annotation, [*created, *tagged, *deleted])
    with pytest.raises(NotFound):
        domain.decide_annotation(gone, api.AnnotationPatch(text="x"), NOW)


def test_settings_record_everything_first_then_only_what_changed() -> None:
    put = api.PutReadingsSettings(auto_declare_sensors=True, retention_days=None)
    first = domain.decide_settings(None, put, NOW)
    assert first == [
        api.ReadingsSettingsChanged(
            changed=["autoDeclareSensors", "retentionDays"], auto_declare_sensors=True
        )
    ]
    state = fold(domain.evolve_settings, first)
    assert domain.decide_settings(state, put, NOW) == []
    shorter = api.PutReadingsSettings(auto_declare_sensors=True, retention_days=30)
    second = domain.decide_settings(state, shorter, NOW)
    assert second == [
        api.ReadingsSettingsChanged(
            changed=["retentionDays"], auto_declare_sensors=True, retention_days=30
        )
    ]
    state = fold(domain.evolve_settings, [*first, *second])
    assert (state.version, state.retention_days) == (2, 30)
    assert domain.settings_stream(DEVICE) == domain.settings_stream(DEVICE)
    assert domain.settings_stream(DEVICE) != domain.settings_stream(KLASS)


ORG_A = uuid.UUID("0190a000-0000-7000-8000-00000000000a")
ORG_B = uuid.UUID("0190a000-0000-7000-8000-00000000000b")
ORG_C = uuid.UUID("0190a000-0000-7000-8000-00000000000c")
TODAY = date(2026, 5, 10)


def days(*ago: int) -> list[date]:
    return [TODAY - timedelta(days=n) for n in ago]


def test_the_plan_drops_partitions_before_the_longest_retention_in_force() -> None:
    partitions = days(400, 91, 90, 89, 1, 0, -3)
    # The default is the longest: partitions of days before today - 90 go.
    p = plan(TODAY, partitions, 90, {ORG_A: 30}, [ORG_A, ORG_B])
    assert p.longest_days == 90 and p.drop_before == TODAY - timedelta(days=90)
    assert p.drop_days == days(400, 91)
    # An organization keeping longer holds every partition it needs.
    p = plan(TODAY, partitions, 90, {ORG_A: 30, ORG_C: 365}, [ORG_A, ORG_B, ORG_C])
    assert p.longest_days == 365 and p.drop_days == days(400)
    # Nothing to drop when nothing is old enough.
    assert plan(TODAY, days(1, 0), 1, {}, []).drop_days == []


def test_the_plan_says_which_organizations_need_their_edges_deleted() -> None:
    p = plan(TODAY, [], 90, {ORG_A: 30, ORG_C: 365, ORG_B: None}, [ORG_A, ORG_B])
    by_org = {e.org_id: e for e in p.expiries}
    assert set(by_org) == {ORG_A, ORG_B, ORG_C}
    assert by_org[ORG_A] == Expiry(
        org_id=ORG_A, days=30, cutoff=day_start(TODAY - timedelta(days=30)), edges=True
    )
    # No setting of its own: the default, shorter than C's 365, so its edges go too.
    assert by_org[ORG_B].days == 90 and by_org[ORG_B].edges
    # The longest keeps everything the dropped partitions do not take.
    assert not by_org[ORG_C].edges
    assert by_org[ORG_C].cutoff == datetime(2025, 5, 10, tzinfo=UTC)
    # Everyone on the default: nobody needs readings deleted row by row.
    assert not any(e.edges for e in plan(TODAY, [], 90, {}, [ORG_A, ORG_B]).expiries)
    with pytest.raises(ValueError):
        plan(TODAY, [], 0, {}, [])


def test_partition_names() -> None:
    assert partition_day("readings_p20260101") == date(2026, 1, 1)
    for name in ("readings_p2026010", "readings_p20261301", "quarantine", "readings_pabcdefgh"):
        assert partition_day(name) is None
