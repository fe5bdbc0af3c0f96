"""Unit codes, sensor and device profiles, and what assigning a device profile creates
(ADR 0088)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from outpost_contracts.errors import ValidationFailed
from outpost_contracts.registry import ValidRange, ValueType
from outpost_fleet.domain.profiles import (
    DeviceProfile,
    ExistingSensor,
    ProfileComponent,
    ProfileSensor,
    SensorProfile,
    check_device_profile,
    check_sensor_profile,
    plan_assignment,
    sensor_profile_problems,
)
from outpost_fleet.domain.units import is_unit

pytestmark = pytest.mark.unit

ACCEPTED = ["Cel", "%", "hPa", "kPa", "kW.h", "m/s", "m/s2", "ug/m3", "km/h", "%{RH}", "[ppm]"]
ACCEPTED += ["dB", "1", "{count}", "s-1", "mm[Hg]", "[degF]", "kOhm", "W/m2", "mbar", "lx"]
REFUSED = ["", " ", "°C", "degC", "kwh", "KW", "m//s", "m/", "/s", "10*3", "Cel ", "{a}{b}"]
REFUSED += ["xyz", "m" * 33, "C\n"]


@pytest.mark.parametrize("code", ACCEPTED)
def test_accepted_unit_codes(code: str) -> None:
    assert is_unit(code)


@pytest.mark.parametrize("code", REFUSED)
def test_refused_unit_codes(code: str) -> None:
    assert not is_unit(code)


TEMPERATURE = SensorProfile(
    id=UUID(int=1), name="Temperature", unit="Cel", min=-40, max=85, precision=1
)
HUMIDITY = SensorProfile(id=UUID(int=2), name="Humidity", unit="%", min=0, max=100)


def test_a_good_sensor_profile_passes_and_min_may_equal_max() -> None:
    check_sensor_profile(TEMPERATURE)
    check_sensor_profile(msgspec.structs.replace(TEMPERATURE, min=5.0, max=5.0))
    check_sensor_profile(
        SensorProfile(id=UUID(int=3), name="Door", unit="1", value_type=ValueType.BOOLEAN)
    )


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"unit": "degC"}, "unit"),
        ({"min": 10.0, "max": 0.0}, "min"),
        ({"min": float("nan")}, "min"),
        ({"precision": 13}, "precision"),
        ({"value_type": ValueType.STRING, "min": None, "max": None}, "precision"),
        ({"value_type": ValueType.BOOLEAN, "precision": None}, "min"),
        ({"key": "bad key"}, "key"),
        ({"name": "  "}, "name"),
    ],
)
def test_sensor_profile_rules(changes: dict[str, Any], field: str) -> None:
    profile = msgspec.structs.replace(TEMPERATURE, **changes)
    assert field in [p.name for p in sensor_profile_problems(profile)]
    with pytest.raises(ValidationFailed):
        check_sensor_profile(profile)


PROFILE = DeviceProfile(
    id=UUID(int=10),
    name="Weather station",
    components=(ProfileComponent(name="main"), ProfileComponent(name="probe", kind="sht31")),
    sensors=(
        ProfileSensor(key="temperature", sensor_profile_id=TEMPERATURE.id, component="probe"),
        ProfileSensor(key="humidity", sensor_profile_id=HUMIDITY.id, component="probe"),
    ),
)
KINDS = {TEMPERATURE.id: TEMPERATURE, HUMIDITY.id: HUMIDITY}


def test_device_profile_rules() -> None:
    check_device_profile(PROFILE, KINDS)
    broken = msgspec.structs.replace(
        PROFILE,
        components=(ProfileComponent(name="main"), ProfileComponent(name="main")),
        sensors=(
            ProfileSensor(key="t", sensor_profile_id=UUID(int=99), component="nowhere"),
            ProfileSensor(key="t", sensor_profile_id=TEMPERATURE.id),
        ),
        expected_interval_seconds=0,
    )
    with pytest.raises(ValidationFailed) as refused:
        check_device_profile(broken, KINDS)
    assert {f.name for f in refused.value.fields} == {
        "components",
        "sensors",
        "sensors[0].sensorProfileId",
        "sensors[0].component",
        "expectedIntervalSeconds",
    }


def test_assigning_a_profile_to_a_bare_device_creates_everything() -> None:
    plan = plan_assignment(PROFILE, KINDS, components=[], sensors=[])
    assert [c.name for c in plan.add_components] == ["main", "probe"]
    assert [(s.key, s.unit, s.valid_range, s.component) for s in plan.declare_sensors] == [
        ("temperature", "Cel", ValidRange(min=-40, max=85), "probe"),
        ("humidity", "%", ValidRange(min=0, max=100), "probe"),
    ]
    assert plan.update_sensors == ()


def test_assigning_creates_only_what_is_missing_and_keeps_the_devices_own() -> None:
    plan = plan_assignment(
        PROFILE,
        KINDS,
        components=["main", "extra"],
        sensors=[
            ExistingSensor(key="humidity", value_type=ValueType.NUMBER, unit="%",
                           valid_range=ValidRange(min=0, max=100)),
            ExistingSensor(key="temperature", value_type=ValueType.NUMBER, unit="[degF]"),
            ExistingSensor(key="battery", value_type=ValueType.NUMBER, unit="V"),
        ],
    )  # fmt: skip
    assert [c.name for c in plan.add_components] == ["probe"]
    assert plan.declare_sensors == ()
    assert [(s.key, s.unit) for s in plan.update_sensors] == [("temperature", "Cel")]


def test_assigning_twice_plans_nothing_the_second_time() -> None:
    first = plan_assignment(PROFILE, KINDS, components=[], sensors=[])
    after = [
        ExistingSensor(key=s.key, value_type=s.value_type, unit=s.unit, valid_range=s.valid_range)
        for s in first.declare_sensors
    ]
    again = plan_assignment(PROFILE, KINDS, [c.name for c in first.add_components], after)
    assert not first.empty and again.empty


@settings(max_examples=150, deadline=None)
@given(
    st.sets(st.sampled_from(["main", "probe", "extra"])),
    st.lists(
        st.builds(
            ExistingSensor,
            key=st.sampled_from(["temperature", "humidity", "battery"]),
            value_type=st.sampled_from(list(ValueType)),
            unit=st.sampled_from([None, "Cel", "%", "V"]),
        ),
        unique_by=lambda s: s.key,
    ),
)
def test_after_carrying_out_an_assignment_nothing_is_left_to_plan(
    components: set[str], sensors: list[ExistingSensor]
) -> None:
    plan = plan_assignment(PROFILE, KINDS, components, sensors)
    done = {s.key: s for s in sensors}
    for spec in (*plan.declare_sensors, *plan.update_sensors):
        done[spec.key] = ExistingSensor(
            key=spec.key, value_type=spec.value_type, unit=spec.unit, valid_range=spec.valid_range
        )
    have = components | {c.name for c in plan.add_components}
    assert plan_assignment(PROFILE, KINDS, have, done.values()).empty
    assert set(done) >= {s.key for s in sensors}  # the device's own sensors stay
