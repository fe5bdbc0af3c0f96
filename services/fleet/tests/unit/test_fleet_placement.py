"""The fleet's view of a device folded from DEVICES events (ADR 0093)."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID

import pytest

from outpost_contracts import devices as dev
from outpost_contracts.base import Event
from outpost_contracts.envelope import EventEnvelope
from outpost_fleet.domain.placement import Placement, fold
from outpost_fleet.domain.rollout import EVERYTHING, Selection, of_bindings

pytestmark = pytest.mark.unit

ORG, DEVICE, SITE, GROUP, PROFILE = (UUID(int=n) for n in (1, 2, 3, 4, 5))
AT = datetime(2026, 1, 1, tzinfo=UTC)


def env(version: int, data: Event) -> EventEnvelope:
    return EventEnvelope(
        id=UUID(int=1000 + version),
        org_id=ORG,
        stream_id=DEVICE,
        stream_type="device",
        version=version,
        occurred_at=AT,
        data=data,
    )


REGISTERED = env(1, dev.DeviceRegistered(name="d", site_id=SITE, profile_id=PROFILE))


def test_a_registration_places_the_device_and_moves_it() -> None:
    got = fold(None, [REGISTERED])
    assert got.placement == Placement(
        org_id=ORG, id=DEVICE, site_id=SITE, profile_id=PROFILE, version=1
    )
    assert got.moved
    assert got.placement.facts().group_ids == frozenset()


def test_only_placement_fields_move_it() -> None:
    known = fold(None, [REGISTERED]).placement
    renamed = fold(known, [env(2, dev.DeviceUpdated(changed=["name"], name="e"))])
    assert not renamed.moved
    assert renamed.placement is not None and renamed.placement.version == 2
    grouped = fold(known, [env(2, dev.DeviceUpdated(changed=["groupId"], group_id=GROUP))])
    assert grouped.moved
    assert grouped.placement is not None
    assert grouped.placement.group_id == GROUP
    assert grouped.placement.site_id == SITE  # not named: kept
    assert grouped.placement.facts().group_ids == {GROUP}


def test_a_profile_cleared_is_a_move() -> None:
    known = fold(None, [REGISTERED]).placement
    got = fold(known, [env(2, dev.DeviceUpdated(changed=["profileId"], profile_id=None))])
    assert got.moved
    assert got.placement is not None and got.placement.profile_id is None


def test_a_redelivered_event_changes_nothing() -> None:
    known = fold(None, [REGISTERED, env(2, dev.DeviceUpdated(changed=["siteId"]))]).placement
    again = fold(known, [REGISTERED, env(2, dev.DeviceUpdated(changed=["siteId"]))])
    assert again.placement == known
    assert not again.moved


def test_a_decommissioned_device_stays_gone() -> None:
    got = fold(None, [REGISTERED, env(2, dev.DeviceDecommissioned())])
    assert got.forgotten
    assert not got.moved
    assert got.placement is not None and got.placement.decommissioned
    again = fold(got.placement, [REGISTERED, env(3, dev.DeviceUpdated(changed=["siteId"]))])
    assert again.placement == got.placement
    assert not again.moved


def test_an_update_of_an_unknown_device_is_skipped() -> None:
    got = fold(None, [env(4, dev.DeviceUpdated(changed=["siteId"], site_id=SITE))])
    assert got.placement is None
    assert not got.moved


def test_a_selection_of_applied_bindings() -> None:
    selection = of_bindings([UUID(int=9)])
    assert not selection.empty
    assert (selection | Selection(device_ids=frozenset({DEVICE}))).applied == {UUID(int=9)}
    assert (selection | EVERYTHING) == EVERYTHING
