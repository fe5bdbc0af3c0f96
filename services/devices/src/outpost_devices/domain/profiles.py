"""What giving a device its device profile creates (issue 21, ADR 0091): pure, no I/O.

The fleet resolves a device profile into a ``DeviceProfileSpec`` (each sensor with its sensor
profile's unit, value type and range filled in); devices plan from it what the device lacks.
Assigning creates what is missing and aligns what differs, and changes nothing the device has
beyond the profile (its own extra components and sensors stay). Applying the plan and
planning again plans nothing: the assignment is idempotent.

Devices' sensors know no component, so a sensor's ``component`` is not carried over; a range
devices cannot hold (``min`` not below ``max``, or on a sensor that is not a NUMBER) is left
out rather than refusing the whole assignment (a sensor profile allows ``min == max``).
"""

from __future__ import annotations

from collections.abc import Iterable

import msgspec

from outpost_contracts.fleet import DeviceProfileSpec, ResolvedComponent, ResolvedSensor
from outpost_contracts.registry import ValidRange, ValueType


class ExistingSensor(msgspec.Struct, frozen=True, kw_only=True):
    """A sensor the device already has (its read model)."""

    key: str
    value_type: ValueType
    unit: str | None = None
    valid_range: ValidRange | None = None


class SensorSpec(msgspec.Struct, frozen=True, kw_only=True):
    """A sensor as the profile wants it."""

    key: str
    value_type: ValueType
    unit: str
    valid_range: ValidRange | None = None


class AssignmentPlan(msgspec.Struct, frozen=True, kw_only=True):
    add_components: tuple[ResolvedComponent, ...] = ()
    declare_sensors: tuple[SensorSpec, ...] = ()
    update_sensors: tuple[SensorSpec, ...] = ()  # existing keys whose unit, type or range differ

    @property
    def empty(self) -> bool:
        return not (self.add_components or self.declare_sensors or self.update_sensors)


def sensor_spec(sensor: ResolvedSensor) -> SensorSpec:
    """The sensor as devices can hold it: a range only on a NUMBER with ``min < max``."""
    valid_range = sensor.valid_range
    if valid_range is not None and (
        sensor.value_type is not ValueType.NUMBER or not valid_range.min < valid_range.max
    ):
        valid_range = None
    return SensorSpec(
        key=sensor.key, value_type=sensor.value_type, unit=sensor.unit, valid_range=valid_range
    )


def plan_assignment(
    profile: DeviceProfileSpec,
    components: Iterable[str],
    sensors: Iterable[ExistingSensor],
) -> AssignmentPlan:
    """What assigning ``profile`` to a device with these component names and sensors does."""
    have_components = set(components)
    have_sensors = {s.key: s for s in sensors}
    add: list[ResolvedComponent] = []
    for component in profile.components:
        if component.name not in have_components:
            have_components.add(component.name)  # a name listed twice is added once
            add.append(component)
    declare: dict[str, SensorSpec] = {}
    update: dict[str, SensorSpec] = {}
    for sensor in profile.sensors:
        spec = sensor_spec(sensor)
        existing = have_sensors.get(spec.key)
        if existing is None:
            declare.setdefault(spec.key, spec)
        elif (existing.value_type, existing.unit, existing.valid_range) != (
            spec.value_type,
            spec.unit,
            spec.valid_range,
        ):
            update.setdefault(spec.key, spec)
    return AssignmentPlan(
        add_components=tuple(add),
        declare_sensors=tuple(declare.values()),
        update_sensors=tuple(update.values()),
    )
