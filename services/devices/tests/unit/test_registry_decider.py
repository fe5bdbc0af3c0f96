"""The site, device-group, component and sensor deciders. No I/O."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import uuid4

import msgspec
import pytest

from outpost_contracts import registry as api
from outpost_contracts.errors import Conflict, NotFound, ValidationFailed
from outpost_devices.domain import registry
from outpost_kit import aggregate

pytestmark = pytest.mark.unit
NOW = datetime(2026, 11, 22, tzinfo=UTC)
DEVICE = uuid4()


def _fold(evolve: aggregate.Evolve, *events: object) -> object:
    state = None
    for event in events:
        state = evolve(state, event, DEVICE)  # type: ignore[arg-type]
    return state


def test_create_site_then_patch_merges_and_names_what_changed() -> None:
    created = registry.decide_site(
        None, api.CreateSite(name="north", timezone="Europe/Oslo", attributes={"a": 1}), NOW
    )
    assert created == [api.SiteCreated(name="north", timezone="Europe/Oslo", attributes={"a": 1})]
    site = registry.evolve_site(None, created[0], uuid4())
    assert site is not None and site.version == 1

    patch = api.SitePatch(
        address="1 Quay", timezone=None, attributes={"a": None, "b": 2}, name="north"
    )
    [updated] = registry.decide_site(site, patch, NOW)
    assert isinstance(updated, api.SiteUpdated)
    assert updated.changed == ["address", "timezone", "attributes"]  # name did not change
    site = registry.evolve_site(site, updated, site.id)
    assert site is not None
    assert (site.address, site.timezone, site.attributes, site.version) == (
        "1 Quay",
        None,
        {"b": 2},
        2,
    )
    assert registry.decide_site(site, api.SitePatch(address="1 Quay"), NOW) == []


def test_create_twice_conflicts_and_a_deleted_resource_is_gone() -> None:
    site = registry.evolve_site(None, api.SiteCreated(name="n"), uuid4())
    with pytest.raises(Conflict):
        registry.decide_site(site, api.CreateSite(name="n"), NOW)
    [deleted] = registry.decide_site(site, registry.Delete(), NOW)
    assert deleted == api.SiteDeleted()
    site = registry.evolve_site(site, deleted, uuid4())
    assert site is not None and site.deleted and site.version == 2
    for command in (registry.Delete(), api.SitePatch(name="m")):
        with pytest.raises(NotFound):
            registry.decide_site(site, command, NOW)  # type: ignore[arg-type]
    with pytest.raises(NotFound):
        registry.decide_site(None, api.SitePatch(name="m"), NOW)


def test_group_lifecycle_and_attribute_size() -> None:
    [created] = registry.decide_group(None, api.CreateDeviceGroup(name="fleet-a"), NOW)
    group = registry.evolve_group(None, created, uuid4())
    [updated] = registry.decide_group(group, api.DeviceGroupPatch(description="pumps"), NOW)
    group = registry.evolve_group(group, updated, uuid4())
    assert group is not None and group.description == "pumps" and group.version == 2
    with pytest.raises(ValidationFailed) as caught:
        registry.decide_group(group, api.DeviceGroupPatch(attributes={"x": "y" * 20_000}), NOW)
    assert caught.value.fields[0].name == "attributes"
    [deleted] = registry.decide_group(group, registry.Delete(), NOW)
    assert isinstance(deleted, api.DeviceGroupDeleted)


def test_component_events_carry_the_device() -> None:
    cmd = api.AddComponent(device_id=DEVICE, name="battery", kind="power")
    [added] = registry.decide_component(None, cmd, NOW)
    component = registry.evolve_component(None, added, uuid4())
    assert component is not None and component.device_id == DEVICE
    [updated] = registry.decide_component(component, api.ComponentPatch(kind=None), NOW)
    assert updated == api.ComponentUpdated(device_id=DEVICE, changed=["kind"], kind=None)
    assert registry.decide_component(component, registry.Delete(), NOW) == [
        api.ComponentRemoved(device_id=DEVICE)
    ]


@pytest.mark.parametrize("value_type", [api.ValueType.BOOLEAN, api.ValueType.STRING])
def test_only_number_sensors_have_a_valid_range(value_type: api.ValueType) -> None:
    cmd = api.DeclareSensor(
        device_id=DEVICE,
        key="door",
        value_type=value_type,
        valid_range=api.ValidRange(min=0, max=1),
    )
    with pytest.raises(ValidationFailed) as caught:
        registry.decide_sensor(None, cmd, NOW)
    assert caught.value.fields[0].name == "validRange"
    plain = api.DeclareSensor(device_id=DEVICE, key="door", value_type=value_type)
    [declared] = registry.decide_sensor(None, plain, NOW)
    assert isinstance(declared, api.SensorDeclared) and declared.value_type is value_type


@pytest.mark.parametrize(("low", "high"), [(10, 10), (10, 5), (float("nan"), 1)])
def test_valid_range_min_is_below_max(low: float, high: float) -> None:
    cmd = api.DeclareSensor(
        device_id=DEVICE, key="t", valid_range=api.ValidRange(min=low, max=high)
    )
    with pytest.raises(ValidationFailed) as caught:
        registry.decide_sensor(None, cmd, NOW)
    assert caught.value.fields[0].name == "validRange"


def test_sensor_patch_checks_the_resulting_type_and_range() -> None:
    declared = api.SensorDeclared(
        device_id=DEVICE,
        key="temperature",
        value_type=api.ValueType.NUMBER,
        unit="C",
        valid_range=api.ValidRange(min=-40, max=85),
    )
    sensor = registry.evolve_sensor(None, declared, uuid4())
    assert sensor is not None
    # Becoming a STRING sensor while keeping the range is refused; dropping it too is fine.
    with pytest.raises(ValidationFailed):
        registry.decide_sensor(sensor, api.SensorPatch(value_type=api.ValueType.STRING), NOW)
    [updated] = registry.decide_sensor(
        sensor, api.SensorPatch(value_type=api.ValueType.STRING, valid_range=None), NOW
    )
    assert updated == api.SensorUpdated(
        device_id=DEVICE,
        key="temperature",
        changed=["valueType", "validRange"],
        value_type=api.ValueType.STRING,
        valid_range=None,
    )
    sensor = registry.evolve_sensor(sensor, updated, sensor.id)
    assert sensor is not None and sensor.valid_range is None and sensor.version == 2
    [removed] = registry.decide_sensor(sensor, registry.Delete(), NOW)
    assert removed == api.SensorRemoved(device_id=DEVICE, key="temperature")


def test_sensor_contract_refuses_bad_keys_types_and_identity_changes() -> None:
    dev = str(DEVICE)
    for body in (
        {"deviceId": dev, "key": "has space"},
        {"deviceId": dev, "key": "t", "valueType": "INTEGER"},
        {"deviceId": dev, "key": "t", "validRange": {"min": 1}},
    ):
        with pytest.raises(msgspec.ValidationError):
            msgspec.json.decode(msgspec.json.encode(body), type=api.DeclareSensor)
    for patch in (b'{"key":"x"}', b'{"deviceId":"x"}', b'{"valueType":null}'):
        with pytest.raises(msgspec.ValidationError):
            msgspec.json.decode(patch, type=api.SensorPatch)


def test_events_round_trip_on_the_wire() -> None:
    for event in (
        api.SiteCreated(name="n", location=api.Location(latitude=59.9, longitude=10.7)),
        api.SensorUpdated(device_id=DEVICE, key="t", changed=["unit"], unit="K"),
    ):
        raw = msgspec.json.encode(event)
        assert msgspec.json.decode(raw, type=type(event)) == event
    assert b'"type":"devices.SensorDeclared.v1"' in msgspec.json.encode(
        api.SensorDeclared(device_id=DEVICE, key="t", value_type=api.ValueType.NUMBER)
    )
