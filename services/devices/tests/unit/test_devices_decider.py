"""The device decider. No I/O."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from uuid import uuid4

import msgspec
import pytest

from outpost_contracts.devices import (
    CreateDevice,
    DeviceDecommissioned,
    DevicePatch,
    DeviceRegistered,
    DeviceStatus,
    DeviceUpdated,
    Tag,
)
from outpost_contracts.envelope import EventEnvelope
from outpost_contracts.errors import Conflict, NotFound, PreconditionFailed, ValidationFailed
from outpost_devices.domain import devices
from outpost_kit import aggregate

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


def _registered(**kw: object) -> devices.Device:
    event = DeviceRegistered(name="pump-1", **kw)  # type: ignore[arg-type]
    state = devices.evolve(None, event, uuid4())
    assert state is not None
    return state


def test_patch_changes_only_what_differs_and_merges_attributes() -> None:
    state = _registered(device_type="pump", attributes={"a": 1, "b": {"c": 2, "d": 3}})
    patch = DevicePatch(
        device_type="pump", site_id=None, attributes={"a": None, "b": {"c": 9}, "e": "x"}
    )
    [event] = devices.decide(state, patch, NOW)
    assert isinstance(event, DeviceUpdated)
    assert event.changed == ["attributes"]
    assert event.attributes == {"b": {"c": 9, "d": 3}, "e": "x"}
    after = devices.evolve(state, event, state.id)
    assert after is not None and after.version == 2 and after.device_type == "pump"
    assert after.attributes == {"b": {"c": 9, "d": 3}, "e": "x"}


def test_patch_null_clears_and_tags_replace() -> None:
    state = _registered(device_type="pump", tags=[Tag(key="k", value="v")])
    [event] = devices.decide(
        state, DevicePatch(name="pump-2", device_type=None, tags=[Tag(key="z")]), NOW
    )
    assert isinstance(event, DeviceUpdated)
    assert event.changed == ["name", "deviceType", "tags"]
    after = devices.evolve(state, event, state.id)
    assert after is not None
    assert (after.name, after.device_type, after.tags) == ("pump-2", None, (Tag(key="z"),))


def test_patch_that_changes_nothing_appends_nothing() -> None:
    state = _registered(device_type="pump")
    assert devices.decide(state, DevicePatch(device_type="pump"), NOW) == []
    assert devices.decide(state, DevicePatch(), NOW) == []


def test_patch_checks_tags_and_attributes_like_registration() -> None:
    state = _registered()
    with pytest.raises(ValidationFailed):
        devices.decide(state, DevicePatch(tags=[Tag(key="k"), Tag(key="k")]), NOW)
    with pytest.raises(ValidationFailed):
        devices.decide(state, DevicePatch(attributes={"x": "y" * 20_000}), NOW)


def test_unknown_device_is_not_found() -> None:
    with pytest.raises(NotFound):
        devices.decide(None, DevicePatch(device_type="x"), NOW)
    with pytest.raises(NotFound):
        devices.decide(None, devices.Decommission(), NOW)


def test_decommission_once_then_nothing_and_no_more_changes() -> None:
    state = _registered()
    [event] = devices.decide(state, devices.Decommission(), NOW)
    assert isinstance(event, DeviceDecommissioned)
    after = devices.evolve(state, event, state.id)
    assert after is not None
    assert after.status is DeviceStatus.DECOMMISSIONED and after.version == 2
    assert devices.decide(after, devices.Decommission(), NOW) == []
    with pytest.raises(Conflict):
        devices.decide(after, DevicePatch(device_type="x"), NOW)


def test_patch_body_refuses_privileged_and_unknown_fields() -> None:
    for body in (b'{"status":"ACTIVE"}', b'{"id":"x"}', b'{"version":3}', b'{"orgId":"x"}'):
        with pytest.raises(msgspec.ValidationError):
            msgspec.json.decode(body, type=DevicePatch)
    assert msgspec.json.decode(b'{"siteId":null}', type=DevicePatch).site_id is None
    assert msgspec.json.decode(b"{}", type=DevicePatch).site_id is msgspec.UNSET


class _FakeEvents:
    def __init__(self, envelopes: list[EventEnvelope]) -> None:
        self.envelopes = envelopes
        self.appended: list[object] = []

    async def load(self, stream_id: object) -> list[EventEnvelope]:
        return self.envelopes

    async def append(self, **kw: object) -> list[object]:
        self.appended.append(kw)
        return []


class _FakeUow:
    def __init__(self, envelopes: list[EventEnvelope]) -> None:
        self.events = _FakeEvents(envelopes)


@pytest.mark.parametrize(("expected", "fails"), [(1, False), (2, True), (0, True), (None, False)])
def test_expected_version_from_if_match(expected: int | None, fails: bool) -> None:
    """``aggregate.execute`` compares If-Match's version with the stream's: a mismatch is 412
    and nothing is appended."""
    org, device = uuid4(), uuid4()
    env = EventEnvelope(
        id=uuid4(),
        org_id=org,
        stream_id=device,
        stream_type=devices.STREAM_TYPE,
        version=1,
        occurred_at=NOW,
        data=DeviceRegistered(name="pump-1"),
    )
    uow = _FakeUow([env])

    async def run() -> None:
        await aggregate.execute(
            uow,  # type: ignore[arg-type]
            None,
            stream_id=device,
            stream_type=devices.STREAM_TYPE,
            decide=devices.decide,
            evolve=devices.evolve,
            command=DevicePatch(device_type="x"),
            org_id=org,
            expected_version=expected,
        )

    if fails:
        with pytest.raises(PreconditionFailed) as caught:
            asyncio.run(run())
        assert caught.value.details == {"expectedVersion": expected, "actualVersion": 1}
        assert uow.events.appended == []
    else:
        asyncio.run(run())
        assert len(uow.events.appended) == 1


def test_the_first_connection_activates_a_provisioned_device_and_nothing_else() -> None:
    from outpost_contracts.devices import DeviceActivated
    from outpost_contracts.provisioning import DeviceProvisioned

    registered = _registered()
    activate = devices.Activate(connected_at=NOW)
    assert devices.decide(registered, activate, NOW) == []  # not provisioned: cannot connect
    provisioned = devices.evolve(
        registered,
        DeviceProvisioned(
            certificate_id=uuid4(), serial="ab", not_before=NOW, not_after=NOW, token_id=None
        ),
        registered.id,
    )
    assert provisioned is not None and provisioned.status is DeviceStatus.PROVISIONED
    [event] = devices.decide(provisioned, activate, NOW)
    assert event == DeviceActivated(connected_at=NOW)
    active = devices.evolve(provisioned, event, provisioned.id)
    assert active is not None and active.status is DeviceStatus.ACTIVE
    assert active.version == provisioned.version + 1
    assert devices.decide(active, activate, NOW) == []  # once only
    retired = devices.evolve(active, DeviceDecommissioned(), active.id)
    assert retired is not None and devices.decide(retired, activate, NOW) == []
