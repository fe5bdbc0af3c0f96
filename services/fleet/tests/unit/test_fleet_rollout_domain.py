"""Which devices a change affects, the digest, batches and delivery outcomes (ADR 0093)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID

import pytest
from hypothesis import given
from hypothesis import strategies as st

from outpost_contracts.device_config import MAX_BATCH, SetFleetDesiredStatesResult
from outpost_contracts.fleet import Target, TargetType
from outpost_fleet.domain.compliance import DeviceCompliance, differing, drifted
from outpost_fleet.domain.desired_state import (
    BindingRef,
    DeviceFacts,
    ResolvedBinding,
    effective_state,
)
from outpost_fleet.domain.rollout import (
    EVERYTHING,
    NOTHING,
    Selection,
    artefact_versions,
    batches,
    desired,
    device_moved,
    digest,
    of_target,
    of_targets,
    outcome,
    retry_at,
)

pytestmark = pytest.mark.unit

SITE, GROUP, PROFILE, DEVICE = (UUID(int=n) for n in (2, 3, 4, 5))
ARTEFACT = UUID(int=99)
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def bound(n: int, kind: TargetType, target_id: UUID | None, doc: dict, version: int = 1):
    return ResolvedBinding(
        binding=BindingRef(id=UUID(int=n), target=Target(type=kind, id=target_id), priority=0),
        artefact_id=ARTEFACT,
        artefact_version=version,
        document=doc,
    )


def test_a_binding_selects_the_devices_of_its_target() -> None:
    assert of_target(Target(type=TargetType.ORGANIZATION)) == EVERYTHING
    assert of_target(Target(type=TargetType.SITE, id=SITE)) == Selection(site_ids=frozenset({SITE}))
    assert of_target(Target(type=TargetType.GROUP, id=GROUP)).group_ids == {GROUP}
    assert of_target(Target(type=TargetType.PROFILE, id=PROFILE)).profile_ids == {PROFILE}
    assert of_target(Target(type=TargetType.DEVICE, id=DEVICE)).device_ids == {DEVICE}
    assert of_target(Target(type=TargetType.SITE)) == NOTHING


def test_an_artefact_selects_the_union_of_its_bindings_and_an_organization_wins() -> None:
    site = Target(type=TargetType.SITE, id=SITE)
    device = Target(type=TargetType.DEVICE, id=DEVICE)
    both = of_targets([site, device])
    assert both == Selection(site_ids=frozenset({SITE}), device_ids=frozenset({DEVICE}))
    assert of_targets([site, Target(type=TargetType.ORGANIZATION), device]) == EVERYTHING
    assert of_targets([]).empty
    assert not both.empty


def test_only_a_placement_change_moves_a_device() -> None:
    assert device_moved(["groupId"])
    assert device_moved(["name", "profileId"])
    assert device_moved(["siteId"])
    assert not device_moved(["name", "tags", "attributes"])


def test_what_is_delivered_names_each_leafs_binding_and_version() -> None:
    org = bound(1, TargetType.ORGANIZATION, None, {"a": 1, "b": {"c": 2}}, version=3)
    group = bound(2, TargetType.GROUP, GROUP, {"b": {"c": 5}}, version=7)
    facts = DeviceFacts(id=DEVICE, group_ids=frozenset({GROUP}))
    state = effective_state(facts, [org, group])
    item = desired(DEVICE, state, {b.binding.id: b for b in (org, group)})
    assert item.document == {"a": 1, "b": {"c": 5}}
    assert item.sources["/a"].binding_id == UUID(int=1)
    assert item.sources["/a"].artefact_version == 3
    assert item.sources["/a"].target_type is TargetType.ORGANIZATION
    assert item.sources["/b/c"].binding_id == UUID(int=2)
    assert item.sources["/b/c"].target_type is TargetType.GROUP
    assert item.digest == digest(item.document, item.sources)
    versions = artefact_versions(state, {b.binding.id: b for b in (org, group)})
    assert versions == [f"{ARTEFACT}@3", f"{ARTEFACT}@7"]


def test_the_digest_is_canonical_and_covers_the_sources() -> None:
    one = bound(1, TargetType.ORGANIZATION, None, {"x": 1, "y": 2})
    other = bound(2, TargetType.ORGANIZATION, None, {"y": 2, "x": 1})
    facts = DeviceFacts(id=DEVICE)
    a = desired(DEVICE, effective_state(facts, [one]), {one.binding.id: one})
    b = desired(DEVICE, effective_state(facts, [other]), {other.binding.id: other})
    assert a.document == b.document
    assert a.digest != b.digest  # another binding sets the same keys: explain must follow
    assert digest({"x": 1, "y": 2}, a.sources) == digest({"y": 2, "x": 1}, a.sources)


@given(st.lists(st.integers(), max_size=2000), st.integers(min_value=1, max_value=MAX_BATCH))
def test_batches_cover_everything_in_order_within_the_bound(items: list[int], size: int) -> None:
    cut = list(batches(items, size))
    assert [x for batch in cut for x in batch] == items
    assert all(0 < len(batch) <= size for batch in cut)


def test_a_batch_is_never_larger_than_devices_accept() -> None:
    with pytest.raises(ValueError):
        list(batches([1], MAX_BATCH + 1))
    assert [len(b) for b in batches(list(range(1001)))] == [500, 500, 1]


def test_the_outcome_sorts_each_sent_device() -> None:
    a, b, c, d, e = (UUID(int=n) for n in range(10, 15))
    result = SetFleetDesiredStatesResult(
        changed=[a], unchanged=[b], missing=[c], too_large=[d, UUID(int=77)]
    )
    got = outcome([a, b, c, d, e], result)
    assert got.changed == {a}
    assert got.unchanged == {b}
    assert got.missing == {c}
    assert got.too_large == {d}  # a device it was not sent is not counted
    assert got.unanswered == {e}


def test_retries_back_off_and_stay_bounded() -> None:
    assert retry_at(1, NOW) == NOW + timedelta(seconds=1)
    assert retry_at(2, NOW) == NOW + timedelta(seconds=2)
    assert retry_at(4, NOW) == NOW + timedelta(seconds=8)
    assert retry_at(1000, NOW) == NOW + timedelta(minutes=5)


def test_a_device_drifts_only_from_in_sync() -> None:
    assert drifted(DeviceCompliance.IN_SYNC, DeviceCompliance.DRIFTED)
    assert not drifted(DeviceCompliance.DRIFTED, DeviceCompliance.DRIFTED)
    assert not drifted(DeviceCompliance.PENDING, DeviceCompliance.DRIFTED)
    assert not drifted(None, DeviceCompliance.DRIFTED)
    assert not drifted(DeviceCompliance.IN_SYNC, DeviceCompliance.IN_SYNC)


def test_differing_names_the_pointers_that_moved() -> None:
    want = {"a": 1, "b": {"c": 2, "d": 3}}
    assert differing(want, {"a": 1, "b": {"c": 2, "d": 3}}) == []
    assert differing(want, {"a": 2, "b": {"c": 2}}) == ["/a", "/b/d"]
    assert differing(want, {"a": 2}, keys=["/b/c"]) == ["/b/c"]
