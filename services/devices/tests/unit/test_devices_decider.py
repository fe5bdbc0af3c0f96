"""The device decider. No I/O."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import uuid4

import pytest

from outpost_contracts.devices import CreateDevice, DeviceRegistered, DeviceStatus, Tag
from outpost_contracts.errors import Conflict, ValidationFailed
from outpost_devices.domain import devices

pytestmark = pytest.mark.unit
NOW = datetime(2026, 11, 21, tzinfo=UTC)


def test_register() -> None:
    cmd = CreateDevice(name="pump-1", device_type="pump", tags=[Tag(key="site", value="n")])
    [event] = devices.decide(None, cmd, NOW)
    assert event == DeviceRegistered(
        name="pump-1", device_type="pump", tags=[Tag(key="site", value="n")]
    )
    state = devices.evolve(None, event, uuid4())
    assert state.status is DeviceStatus.REGISTERED and state.version == 1


def test_register_twice_conflicts() -> None:
    state = devices.evolve(None, DeviceRegistered(name="a"), uuid4())
    with pytest.raises(Conflict):
        devices.decide(state, CreateDevice(name="a"), NOW)


def test_duplicate_tag_keys_and_huge_attributes_are_refused() -> None:
    with pytest.raises(ValidationFailed) as caught:
        devices.decide(None, CreateDevice(name="a", tags=[Tag(key="k"), Tag(key="k")]), NOW)
    assert caught.value.fields[0].name == "tags"
    with pytest.raises(ValidationFailed):
        devices.decide(None, CreateDevice(name="a", attributes={"x": "y" * 20_000}), NOW)
