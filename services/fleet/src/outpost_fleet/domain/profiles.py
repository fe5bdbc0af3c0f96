"""Sensor and device profiles: their rules, and what assigning a device profile to a device
creates (ADR 0088).

A sensor profile describes a kind of measurement once: a unit code (``units``), a value type
(devices' ``ValueType``), a valid range (``min <= max``, numbers only) and a precision (decimal
places, NUMBER only). A device profile lists components and sensors, each sensor from a
sensor profile. Assigning a profile to a device creates what the device lacks and changes
nothing it already has beyond that (its own extra components and sensors stay): the plan says
which components to add, which sensors to declare, and which existing sensors to align with
their profile's unit, type and range.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from uuid import UUID

import msgspec

from outpost_contracts.errors import FieldError, ValidationFailed
from outpost_contracts.registry import ValidRange, ValueType
from outpost_fleet.domain.units import is_unit

MAX_PRECISION = 12
# devices' SensorKey: what a reading's ``sensor`` may be.
SENSOR_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}")


class SensorProfile(msgspec.Struct, frozen=True, kw_only=True):
    id: UUID
    name: str
    unit: str
    value_type: ValueType = ValueType.NUMBER
    key: str | None = None
    min: float | None = None
    max: float | None = None
    precision: int | None = None

    @property
    def valid_range(self) -> ValidRange | None:
        if self.min is None or self.max is None:
            return None
        return ValidRange(min=self.min, max=self.max)


class ProfileSensor(msgspec.Struct, frozen=True, kw_only=True):
    key: str
    sensor_profile_id: UUID
    component: str | None = None  # the component's name, when the sensor belongs to one


class ProfileComponent(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    kind: str | None = None


class DeviceProfile(msgspec.Struct, frozen=True, kw_only=True):
    id: UUID
    name: str
    components: tuple[ProfileComponent, ...] = ()
    sensors: tuple[ProfileSensor, ...] = ()
    config_artefact_id: UUID | None = None
    expected_interval_seconds: int | None = None
    firmware_family: str | None = None


def sensor_profile_problems(profile: SensorProfile) -> list[FieldError]:
    problems: list[FieldError] = []

    def bad(name: str, message: str) -> None:
        problems.append(FieldError(name=name, message=message))

    if not profile.name.strip():
        bad("name", "must not be blank")
    if not is_unit(profile.unit):
        bad("unit", "not an accepted UCUM code (e.g. Cel, %, hPa, kW.h, m/s; ADR 0088)")
    if profile.key is not None and SENSOR_KEY.fullmatch(profile.key) is None:
        bad("key", "not a sensor key")
    numeric = profile.value_type is ValueType.NUMBER
    bounds = [b for b in (profile.min, profile.max) if b is not None]
    if bounds and not numeric:
        bad("min", "a range needs value type NUMBER")
    if any(not math.isfinite(b) for b in bounds):
        bad("min", "min and max must be finite")
    elif profile.min is not None and profile.max is not None and profile.min > profile.max:
        bad("min", "min must not be greater than max")
    if profile.precision is not None:
        if not numeric:
            bad("precision", "a precision needs value type NUMBER")
        elif not 0 <= profile.precision <= MAX_PRECISION:
            bad("precision", f"between 0 and {MAX_PRECISION} decimal places")
    return problems


def check_sensor_profile(profile: SensorProfile) -> None:
    problems = sensor_profile_problems(profile)
    if problems:
        raise ValidationFailed("the sensor profile is not valid", fields=problems)


def check_device_profile(profile: DeviceProfile, known_sensor_profiles: Iterable[UUID]) -> None:
    """``known_sensor_profiles``: the organization's sensor profiles (the use case reads them)."""
    problems: list[FieldError] = []
    known = set(known_sensor_profiles)
    if not profile.name.strip():
        problems.append(FieldError(name="name", message="must not be blank"))
    names = [c.name for c in profile.components]
    if len(names) != len(set(names)):
        problems.append(FieldError(name="components", message="each name may appear once"))
    keys = [s.key for s in profile.sensors]
    if len(keys) != len(set(keys)):
        problems.append(FieldError(name="sensors", message="each key may appear once"))
    for i, sensor in enumerate(profile.sensors):
        if SENSOR_KEY.fullmatch(sensor.key) is None:
            problems.append(FieldError(name=f"sensors[{i}].key", message="not a sensor key"))
        if sensor.sensor_profile_id not in known:
            problems.append(
                FieldError(name=f"sensors[{i}].sensorProfileId", message="no such sensor profile")
            )
        if sensor.component is not None and sensor.component not in names:
            problems.append(
                FieldError(name=f"sensors[{i}].component", message="not one of the components")
            )
    if profile.expected_interval_seconds is not None and profile.expected_interval_seconds < 1:
        problems.append(FieldError(name="expectedIntervalSeconds", message="at least 1"))
    if problems:
        raise ValidationFailed("the device profile is not valid", fields=problems)


class ExistingSensor(msgspec.Struct, frozen=True, kw_only=True):
    """A sensor the device already has (devices' registry)."""

    key: str
    value_type: ValueType
    unit: str | None = None
    valid_range: ValidRange | None = None


class SensorSpec(msgspec.Struct, frozen=True, kw_only=True):
    key: str
    value_type: ValueType
    unit: str
    valid_range: ValidRange | None
    component: str | None = None


class AssignmentPlan(msgspec.Struct, frozen=True, kw_only=True):
    add_components: tuple[ProfileComponent, ...]
    declare_sensors: tuple[SensorSpec, ...]
    update_sensors: tuple[SensorSpec, ...]  # existing keys whose unit, type or range differ

    @property
    def empty(self) -> bool:
        return not (self.add_components or self.declare_sensors or self.update_sensors)


def plan_assignment(
    profile: DeviceProfile,
    sensor_profiles: Mapping[UUID, SensorProfile],
    components: Iterable[str],
    sensors: Iterable[ExistingSensor],
) -> AssignmentPlan:
    """What assigning ``profile`` to a device with these component names and sensors creates.

    Applying the plan and planning again plans nothing (the assignment is idempotent); nothing
    the device has beyond the profile is removed."""
    have_components = set(components)
    have_sensors = {s.key: s for s in sensors}
    add = tuple(c for c in profile.components if c.name not in have_components)
    declare: list[SensorSpec] = []
    update: list[SensorSpec] = []
    for sensor in profile.sensors:
        kind = sensor_profiles[sensor.sensor_profile_id]
        spec = SensorSpec(
            key=sensor.key,
            value_type=kind.value_type,
            unit=kind.unit,
            valid_range=kind.valid_range,
            component=sensor.component,
        )
        existing = have_sensors.get(sensor.key)
        if existing is None:
            declare.append(spec)
        elif (existing.value_type, existing.unit, existing.valid_range) != (
            spec.value_type,
            spec.unit,
            spec.valid_range,
        ):
            update.append(spec)
    return AssignmentPlan(
        add_components=add, declare_sensors=tuple(declare), update_sensors=tuple(update)
    )
