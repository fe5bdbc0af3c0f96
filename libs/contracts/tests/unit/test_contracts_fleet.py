"""``outpost_contracts.fleet``: the fleet events' wire tags and round trips."""

from __future__ import annotations

from uuid import UUID

import msgspec
import pytest

from outpost_contracts import fleet
from outpost_contracts.base import event_name, event_tag

pytestmark = pytest.mark.unit


def test_every_fleet_event_has_a_fleet_v1_tag_of_its_own() -> None:
    tags = [event_tag(t) for t in fleet.EVENT_TYPES]
    assert len(set(tags)) == len(tags)
    for event_type, tag in zip(fleet.EVENT_TYPES, tags, strict=True):
        assert event_name(tag) == ("fleet", event_type.__name__, 1)


def test_a_binding_event_round_trips_in_camel_case() -> None:
    event = fleet.DesiredStateBindingCreated(
        artefact_id=UUID(int=1),
        target=fleet.Target(type=fleet.TargetType.GROUP, id=UUID(int=2)),
        priority=5,
        artefact_version=3,
    )
    wire = msgspec.json.encode(event)
    assert (
        b'"artefactVersion":3' in wire and b'"type":"fleet.DesiredStateBindingCreated.v1"' in wire
    )
    decoded = msgspec.json.decode(wire, type=fleet.DesiredStateBindingCreated)
    assert decoded == event
