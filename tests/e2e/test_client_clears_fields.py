"""The Python client clears fields through PATCH against the running platform (decision 73):
a device leaves its group (and its site) and an alert rule loses its ``clear``,
``description`` and ``hysteresis`` with the generated models, read back as null; a field
left out of the patch stays as it was; an offline rule loses its sensor; the CLI's
``--set groupId=null`` does the same."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from outpost_client import Client, errors
from outpost_client.models import (
    UNSET,
    AddComponent,
    AlertRulePatch,
    AnnotationClassPatch,
    AnnotationPatch,
    ComponentPatch,
    Condition,
    CreateAlertRule,
    CreateAnnotation,
    CreateAnnotationClass,
    CreateDevice,
    CreateDeviceGroup,
    CreateSite,
    DeclareSensor,
    DeviceGroupPatch,
    DevicePatch,
    Location,
    RuleScope,
    SensorPatch,
    SitePatch,
    Tag,
    ValidRange,
)
from tests.e2e._cli import Cli

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def org(tenants: Any, raise_limits: Any) -> dict[str, Any]:
    made = tenants.org("patch-null")
    raise_limits(made["id"])
    return {**made, "key": tenants.key(made["id"])["key"]}


@pytest.fixture(scope="module")
def api(platform: dict[str, Any], org: dict[str, Any]) -> Iterator[Client]:
    with Client(platform["gatewayUrl"], org["key"]) as client:
        yield client


def test_a_device_leaves_its_group_and_site_through_the_typed_client(api: Client) -> None:
    group = api.create_device_group(body=CreateDeviceGroup(name="cellar", description="old"))
    site = api.create_site(body=CreateSite(name="lyon", timezone="Europe/Paris"))
    device = api.create_device(
        body=CreateDevice(
            name="gw-patch-null", device_type="gateway", group_id=group.id, site_id=site.id
        )
    )
    assert (device.group_id, device.site_id) == (group.id, site.id)

    # A field left out (UNSET) is not sent: the group and the site stay.
    renamed = api.update_device(device.id, body=DevicePatch(device_type="router"))
    assert (renamed.group_id, renamed.site_id, renamed.device_type) == (
        group.id,
        site.id,
        "router",
    )
    assert renamed.version == device.version + 1

    # None is sent as null: the device leaves its group, nothing else changes.
    left = api.update_device(
        device.id, body=DevicePatch(group_id=None), if_match=f'"{renamed.version}"'
    )
    assert left.group_id is None and left.site_id == site.id and left.device_type == "router"
    read = api.get_device(device.id)
    assert read.group_id is None and read.site_id == site.id and read.version == left.version
    raw = api.json("GET", f"/api/v1/devices/{device.id}")
    assert raw.get("groupId") is None and raw["siteId"] == str(site.id)
    members = api.list_devices(params={"groupId": str(group.id)})
    assert device.id not in {d.id for d in members.data}

    # Two at once, and one explicitly UNSET.
    bare = api.update_device(
        device.id, body=DevicePatch(site_id=None, device_type=None, group_id=UNSET)
    )
    assert (bare.site_id, bare.device_type, bare.group_id) == (None, None, None)
    assert api.get_device(device.id).site_id is None

    # A group's description cleared the same way.
    cleared = api.update_device_group(group.id, body=DeviceGroupPatch(description=None))
    assert cleared.description is None and cleared.name == "cellar"


def test_an_alert_rule_loses_clear_description_and_hysteresis(api: Client) -> None:
    device = api.create_device(body=CreateDevice(name="boiler-patch-null"))
    rule = api.create_alert_rule(
        body=CreateAlertRule(
            name="too-hot",
            scope=RuleScope(type="DEVICE", id=device.id),
            sensor="temperature",
            condition=Condition(op=">", threshold=30.0),
            clear=Condition(op="<", threshold=25.0),
            severity="MAJOR",
            description="boiler room",
        )
    )
    assert rule.clear == Condition(op="<", threshold=25.0)
    assert rule.description == "boiler room"

    # Left out: unchanged.
    renamed = api.update_alert_rule(rule.id, body=AlertRulePatch(name="too-hot-2"))
    assert renamed.clear == rule.clear and renamed.description == "boiler room"

    cleared = api.update_alert_rule(
        rule.id,
        body=AlertRulePatch(clear=None, description=None),
        if_match=f'"{renamed.version}"',
    )
    assert cleared.clear is None and cleared.description is None
    assert cleared.name == "too-hot-2" and cleared.sensor == "temperature"
    read = api.get_alert_rule(rule.id)
    assert read.clear is None and read.description is None and read.version == cleared.version
    raw = api.json("GET", f"/api/v1/alert-rules/{rule.id}")
    assert raw["clear"] is None and raw["description"] is None

    # hysteresis: set, then cleared (it cannot go with ``clear``, now gone).
    with_margin = api.update_alert_rule(rule.id, body=AlertRulePatch(hysteresis=0.5))
    assert with_margin.hysteresis == 0.5
    no_margin = api.update_alert_rule(rule.id, body=AlertRulePatch(hysteresis=None))
    assert no_margin.hysteresis is None and api.get_alert_rule(rule.id).hysteresis is None

    # A comparison rule's sensor cannot be null: refused, and nothing changed.
    with pytest.raises(errors.ValidationError) as refused:
        api.update_alert_rule(rule.id, body=AlertRulePatch(sensor=None))
    assert [f.name for f in refused.value.fields] == ["sensor"]
    assert api.get_alert_rule(rule.id).version == no_margin.version


def test_an_offline_rule_loses_its_sensor_through_the_typed_client(api: Client) -> None:
    rule = api.create_alert_rule(
        body=CreateAlertRule(
            name="gone-labelled",
            scope=RuleScope(type="ORGANIZATION"),
            sensor="presence",
            condition=Condition(op="offline", seconds=300),
            severity="MINOR",
        )
    )
    assert rule.sensor == "presence"
    unlabelled = api.update_alert_rule(rule.id, body=AlertRulePatch(sensor=None))
    assert unlabelled.sensor is None and api.get_alert_rule(rule.id).sensor is None


def test_the_cli_sets_null_too(
    api: Client, platform: dict[str, Any], org: dict[str, Any], tmp_path: Path
) -> None:
    group = api.create_device_group(body=CreateDeviceGroup(name="attic"))
    device = api.create_device(body=CreateDevice(name="gw-cli-null", group_id=group.id))
    cli = Cli(tmp_path / "config.yaml")
    cli.run("login", "--url", platform["gatewayUrl"], "--api-key", org["key"])
    changed = cli.json("devices", "update", "gw-cli-null", "--set", "groupId=null")
    assert changed["groupId"] is None
    assert api.get_device(device.id).group_id is None


def test_every_other_patch_clears_its_nullable_fields(api: Client) -> None:
    """Sites, sensors, components, annotation classes and annotations: every field the
    generated PATCH model types ``… | UnsetType | None`` is set at creation, then cleared
    by one patch of Nones, and reads back cleared; fields left out stay."""
    device = api.create_device(body=CreateDevice(name="gw-clear-all"))
    site = api.create_site(
        body=CreateSite(
            name="paris",
            address="1 rue X",
            timezone="Europe/Paris",
            location=Location(latitude=48.85, longitude=2.35),
            attributes={"floor": 2},
        )
    )
    site2 = api.update_site(
        site.id, body=SitePatch(address=None, timezone=None, location=None, attributes=None)
    )
    got_site = api.get_site(site.id)
    assert (got_site.address, got_site.timezone, got_site.location) == (None, None, None)
    assert got_site.attributes == {} and got_site.name == "paris"  # null clears every key
    assert site2.version == got_site.version == site.version + 1

    sensor = api.create_sensor(
        body=DeclareSensor(
            device_id=device.id,
            key="temperature",
            unit="C",
            valid_range=ValidRange(min=-40, max=120),
        )
    )
    api.update_sensor(sensor.id, body=SensorPatch(unit=None, valid_range=None))
    got_sensor = api.get_sensor(sensor.id)
    assert (got_sensor.unit, got_sensor.valid_range) == (None, None)
    assert got_sensor.value_type == sensor.value_type

    component = api.create_component(
        body=AddComponent(device_id=device.id, name="fan", kind="actuator", attributes={"rpm": 1})
    )
    api.update_component(component.id, body=ComponentPatch(kind=None, attributes=None))
    got_component = api.get_component(component.id)
    assert got_component.kind is None and got_component.attributes == {}
    assert got_component.name == "fan"

    klass = api.create_annotation_class(
        body=CreateAnnotationClass(name="maintenance", colour="#00FF00", description="planned")
    )
    api.update_annotation_class(klass.id, body=AnnotationClassPatch(colour=None, description=None))
    got_class = api.get_annotation_class(klass.id)
    assert (got_class.colour, got_class.description, got_class.name) == (
        None,
        None,
        "maintenance",
    )

    now = datetime.now(UTC).replace(microsecond=0)
    note = api.create_annotation(
        body=CreateAnnotation(
            class_id=klass.id,
            device_id=device.id,
            from_=now - timedelta(hours=1),
            to=now,
            sensor="temperature",
            text="filter changed",
            tags=[Tag(key="by", value="ada")],
        )
    )
    api.update_annotation(note.id, body=AnnotationPatch(sensor=None, text=None, tags=None))
    got_note = api.get_annotation(note.id)
    assert (got_note.sensor, got_note.text) == (None, None)
    assert got_note.tags == [] and got_note.from_ == note.from_


def test_a_bulk_patch_takes_every_matching_device_out_of_its_group(api: Client) -> None:
    group = api.create_device_group(body=CreateDeviceGroup(name="fleet-to-empty"))
    made = [
        api.create_device(body=CreateDevice(name=f"bulk-null-{i}", group_id=group.id))
        for i in range(2)
    ]
    done = api.bulk_update_devices(
        body=DevicePatch(group_id=None), filter=f"groupId eq {group.id}", expected_count=2
    )
    assert (done.matched, done.changed) == (2, 2)
    assert [api.get_device(d.id).group_id for d in made] == [None, None]
