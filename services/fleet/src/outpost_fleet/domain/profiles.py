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
from datetime import datetime
from typing import Any
from uuid import UUID

import msgspec

from outpost_contracts import fleet as api
from outpost_contracts import patch
from outpost_contracts.alerting import (
    COMPARISONS,
    MAX_NODATA_SECONDS,
    MAX_OFFLINE_SECONDS,
    MIN_NODATA_SECONDS,
    Condition,
    Severity,
)
from outpost_contracts.base import Event
from outpost_contracts.errors import Conflict, FieldError, ValidationFailed
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
    display_name: str | None = None
    version: int = 0  # the aggregate's (decide/evolve below); 0 when built outside one
    deleted: bool = False

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
    rule_templates: tuple[api.RuleTemplate, ...] = ()
    description: str | None = None
    version: int = 0  # the aggregate's (decide/evolve below); 0 when built outside one
    deleted: bool = False


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


# --- the aggregates: sensor profiles and device profiles (ADR 0092) -----------------------
# What needs the read models (the organization's sensor profiles, whether the config artefact
# exists, which device profiles use a sensor profile, how many devices have a device profile)
# is read by the use case in the same transaction and passed in with the command.

SENSOR_PROFILE = "sensor_profile"
DEVICE_PROFILE = "device_profile"

# API name -> attribute, in the order ``…Changed.changed`` lists them.
SENSOR_FIELDS = {
    "name": "name",
    "unit": "unit",
    "valueType": "value_type",
    "key": "key",
    "min": "min",
    "max": "max",
    "precision": "precision",
    "displayName": "display_name",
}
DEVICE_FIELDS = {
    "name": "name",
    "components": "components",
    "sensors": "sensors",
    "ruleTemplates": "rule_templates",
    "configArtefactId": "config_artefact_id",
    "expectedIntervalSeconds": "expected_interval_seconds",
    "firmwareFamily": "firmware_family",
    "description": "description",
}
# ``DeviceProfileChanged.changed`` when one of the profile's sensor profiles changed.
SENSOR_PROFILES_CHANGED = "sensorProfiles"


class DeleteSensorProfile(msgspec.Struct, frozen=True, kw_only=True):
    used_by: tuple[UUID, ...] = ()  # the device profiles that name it


class CreateDeviceProfile(msgspec.Struct, frozen=True, kw_only=True):
    spec: api.CreateDeviceProfile
    sensor_profiles: frozenset[UUID] = frozenset()  # the organization's
    artefact_exists: bool = True  # whether ``config_artefact_id`` is the organization's


class ChangeDeviceProfile(msgspec.Struct, frozen=True, kw_only=True):
    patch: api.DeviceProfilePatch
    sensor_profiles: frozenset[UUID] = frozenset()
    artefact_exists: bool = True


class SensorProfilesChanged(msgspec.Struct, frozen=True, kw_only=True):
    """One of the profile's sensor profiles changed: what it resolves to changed."""


class DeleteDeviceProfile(msgspec.Struct, frozen=True, kw_only=True):
    devices: int = 0  # how many devices have the profile


SensorCommand = api.CreateSensorProfile | api.SensorProfilePatch | DeleteSensorProfile
DeviceCommand = (
    CreateDeviceProfile | ChangeDeviceProfile | SensorProfilesChanged | DeleteDeviceProfile
)


def _sensor_fields(profile: SensorProfile) -> dict[str, Any]:
    return {attr: getattr(profile, attr) for attr in SENSOR_FIELDS.values()}


def decide_sensor_profile(
    state: SensorProfile | None, command: SensorCommand, now: datetime
) -> list[Event]:
    if isinstance(command, api.CreateSensorProfile):
        if state is not None:
            raise Conflict("the sensor profile already exists")
        created = SensorProfile(
            id=UUID(int=0), **{a: getattr(command, a) for a in SENSOR_FIELDS.values()}
        )
        check_sensor_profile(created)
        return [api.SensorProfileCreated(**_sensor_fields(created))]
    live = patch.live(state, "sensor profile")
    if isinstance(command, DeleteSensorProfile):
        if command.used_by:
            raise Conflict(
                f"the sensor profile is used by {len(command.used_by)} device profile(s)",
                details={"deviceProfileIds": [str(i) for i in command.used_by]},
            )
        return [api.SensorProfileDeleted()]
    changes = patch.changes(live, command, SENSOR_FIELDS)
    if not changes:
        return []
    new = msgspec.structs.replace(live, **{SENSOR_FIELDS[k]: v for k, v in changes.items()})
    check_sensor_profile(new)
    return [api.SensorProfileChanged(changed=list(changes), **_sensor_fields(new))]


def evolve_sensor_profile(
    state: SensorProfile | None, event: Event, stream_id: UUID
) -> SensorProfile | None:
    if isinstance(event, api.SensorProfileCreated | api.SensorProfileChanged):
        values = {attr: getattr(event, attr) for attr in SENSOR_FIELDS.values()}
        version = 1 if state is None else state.version + 1
        return SensorProfile(id=stream_id, version=version, **values)
    assert state is not None, f"{type(event).__name__} before its sensor profile was created"
    if isinstance(event, api.SensorProfileDeleted):
        return msgspec.structs.replace(state, deleted=True, version=state.version + 1)
    return msgspec.structs.replace(state, version=state.version + 1)


# -- rule templates ----------------------------------------------------------------------
# The shape alerting's rules check (its domain/conditions.py): the fields that go with the
# operator, a sensor for every op but ``offline``, and the clearing options.

_NODATA_OPS = ("nodata", "offline")


def _condition_problems(condition: Condition, field: str) -> list[FieldError]:
    op = condition.op
    allowed = (
        {"threshold"} if op in COMPARISONS else {"low", "high"} if op == "outside" else {"seconds"}
    )
    problems: list[FieldError] = []
    for name in ("threshold", "low", "high", "seconds"):
        value = getattr(condition, name)
        if name in allowed and value is None:
            problems.append(FieldError(name=f"{field}.{name}", message=f"required with op {op!r}"))
        if name not in allowed and value is not None:
            problems.append(
                FieldError(name=f"{field}.{name}", message=f"not allowed with op {op!r}")
            )
    if problems:
        return problems
    if op == "outside" and not (condition.low or 0) < (condition.high or 0):
        problems.append(FieldError(name=f"{field}.high", message="must be greater than low"))
    seconds = condition.seconds or 0
    if op == "offline" and not 0 <= seconds <= MAX_OFFLINE_SECONDS:
        problems.append(
            FieldError(name=f"{field}.seconds", message=f"between 0 and {MAX_OFFLINE_SECONDS}")
        )
    if op == "nodata" and not MIN_NODATA_SECONDS <= seconds <= MAX_NODATA_SECONDS:
        problems.append(
            FieldError(
                name=f"{field}.seconds",
                message=f"between {MIN_NODATA_SECONDS} and {MAX_NODATA_SECONDS}",
            )
        )
    return problems


def rule_template_problems(
    template: api.RuleTemplate, sensor_keys: Iterable[str], field: str
) -> list[FieldError]:
    """A template's problems, each named ``<field>.<what>`` (``ruleTemplates[0].sensor``)."""
    problems = _condition_problems(template.condition, f"{field}.condition")
    op = template.condition.op
    if template.sensor is None and op != "offline":
        problems.append(FieldError(name=f"{field}.sensor", message=f"required with op {op!r}"))
    elif template.sensor is not None and template.sensor not in set(sensor_keys):
        problems.append(
            FieldError(name=f"{field}.sensor", message="not one of the profile's sensors")
        )
    if template.clear is not None:
        problems += _condition_problems(template.clear, f"{field}.clear")
        if op in _NODATA_OPS or template.clear.op in _NODATA_OPS:
            problems.append(FieldError(name=f"{field}.clear", message="not with nodata or offline"))
        if template.hysteresis is not None:
            problems.append(
                FieldError(name=f"{field}.hysteresis", message="give clear or hysteresis, not both")
            )
    if template.hysteresis is not None and (op in _NODATA_OPS or op in ("==", "!=")):
        problems.append(FieldError(name=f"{field}.hysteresis", message=f"not with op {op!r}"))
    if op in _NODATA_OPS and template.for_seconds:
        problems.append(
            FieldError(name=f"{field}.forSeconds", message=f"{op} waits its own seconds")
        )
    return problems


# Missed intervals before the implied ``nodata`` and ``offline`` templates fire.
IMPLIED_MISSED_INTERVALS = 3


def implied_rule_templates(profile: DeviceProfile) -> list[api.RuleTemplate]:
    """The ``nodata`` rule per sensor and the ``offline`` rule that ``expected_interval_seconds``
    implies: each fires after ``IMPLIED_MISSED_INTERVALS`` intervals without a reading (a
    NUMBER, BOOLEAN or STRING sensor alike) or without the device connected, clamped to what
    alerting accepts. None without an expected interval."""
    interval = profile.expected_interval_seconds
    if interval is None:
        return []
    wait = interval * IMPLIED_MISSED_INTERVALS
    nodata = min(max(wait, MIN_NODATA_SECONDS), MAX_NODATA_SECONDS)
    templates = [
        api.RuleTemplate(
            name=f"{sensor.key}: no data",
            sensor=sensor.key,
            condition=Condition(op="nodata", seconds=nodata),
            severity=Severity.WARNING,
            description=f"no reading for {nodata} s ({IMPLIED_MISSED_INTERVALS} intervals)",
        )
        for sensor in profile.sensors
    ]
    offline = min(wait, MAX_OFFLINE_SECONDS)
    templates.append(
        api.RuleTemplate(
            name="offline",
            condition=Condition(op="offline", seconds=offline),
            severity=Severity.MAJOR,
            description=f"disconnected for {offline} s ({IMPLIED_MISSED_INTERVALS} intervals)",
        )
    )
    return templates


# -- device profiles ---------------------------------------------------------------------


def _components(items: Iterable[api.ProfileComponent]) -> tuple[ProfileComponent, ...]:
    return tuple(ProfileComponent(name=c.name, kind=c.kind) for c in items)


def _sensors(items: Iterable[api.ProfileSensor]) -> tuple[ProfileSensor, ...]:
    return tuple(
        ProfileSensor(key=s.key, sensor_profile_id=s.sensor_profile_id, component=s.component)
        for s in items
    )


_DEVICE_CONVERT = {
    "components": lambda _state, value: _components(value),
    "sensors": lambda _state, value: _sensors(value),
    "rule_templates": lambda _state, value: tuple(value),
}


def _check_whole(
    profile: DeviceProfile, sensor_profiles: frozenset[UUID], artefact_exists: bool
) -> None:
    problems: list[FieldError] = []
    try:
        check_device_profile(profile, sensor_profiles)
    except ValidationFailed as exc:
        problems += exc.fields
    keys = [s.key for s in profile.sensors]
    for i, template in enumerate(profile.rule_templates):
        problems += rule_template_problems(template, keys, f"ruleTemplates[{i}]")
    if profile.config_artefact_id is not None and not artefact_exists:
        problems.append(
            FieldError(
                name="configArtefactId", message="no such config artefact in this organization"
            )
        )
    if problems:
        raise ValidationFailed("the device profile is not valid", fields=problems)


def _device_event_fields(profile: DeviceProfile) -> dict[str, Any]:
    return {
        "name": profile.name,
        "components": [api.ProfileComponent(name=c.name, kind=c.kind) for c in profile.components],
        "sensors": [
            api.ProfileSensor(
                key=s.key, sensor_profile_id=s.sensor_profile_id, component=s.component
            )
            for s in profile.sensors
        ],
        "rule_templates": list(profile.rule_templates),
        "config_artefact_id": profile.config_artefact_id,
        "expected_interval_seconds": profile.expected_interval_seconds,
        "firmware_family": profile.firmware_family,
        "description": profile.description,
    }


def decide_device_profile(
    state: DeviceProfile | None, command: DeviceCommand, now: datetime
) -> list[Event]:
    if isinstance(command, CreateDeviceProfile):
        if state is not None:
            raise Conflict("the device profile already exists")
        spec = command.spec
        profile = DeviceProfile(
            id=UUID(int=0),
            name=spec.name,
            components=_components(spec.components),
            sensors=_sensors(spec.sensors),
            rule_templates=tuple(spec.rule_templates),
            config_artefact_id=spec.config_artefact_id,
            expected_interval_seconds=spec.expected_interval_seconds,
            firmware_family=spec.firmware_family,
            description=spec.description,
        )
        _check_whole(profile, command.sensor_profiles, command.artefact_exists)
        return [api.DeviceProfileCreated(**_device_event_fields(profile))]
    live = patch.live(state, "device profile")
    if isinstance(command, DeleteDeviceProfile):
        if command.devices:
            raise Conflict(
                f"the device profile is used by {command.devices} device(s)",
                details={"deviceCount": command.devices},
            )
        return [api.DeviceProfileDeleted()]
    if isinstance(command, SensorProfilesChanged):
        changed = [SENSOR_PROFILES_CHANGED]
        new = live
    else:
        changes = patch.changes(live, command.patch, DEVICE_FIELDS, _DEVICE_CONVERT)
        if not changes:
            return []
        new = msgspec.structs.replace(live, **{DEVICE_FIELDS[k]: v for k, v in changes.items()})
        artefact_named = "configArtefactId" in changes
        _check_whole(new, command.sensor_profiles, command.artefact_exists or not artefact_named)
        changed = list(changes)
    return [
        api.DeviceProfileChanged(
            changed=changed,
            profile_version=live.version + 1,
            **_device_event_fields(new),
        )
    ]


def evolve_device_profile(
    state: DeviceProfile | None, event: Event, stream_id: UUID
) -> DeviceProfile | None:
    if isinstance(event, api.DeviceProfileCreated | api.DeviceProfileChanged):
        return DeviceProfile(
            id=stream_id,
            version=1 if state is None else state.version + 1,
            name=event.name,
            components=_components(event.components),
            sensors=_sensors(event.sensors),
            rule_templates=tuple(event.rule_templates),
            config_artefact_id=event.config_artefact_id,
            expected_interval_seconds=event.expected_interval_seconds,
            firmware_family=event.firmware_family,
            description=event.description,
        )
    assert state is not None, f"{type(event).__name__} before its device profile was created"
    if isinstance(event, api.DeviceProfileDeleted):
        return msgspec.structs.replace(state, deleted=True, version=state.version + 1)
    return msgspec.structs.replace(state, version=state.version + 1)


def resolve(
    profile: DeviceProfile, sensor_profiles: Mapping[UUID, SensorProfile]
) -> api.DeviceProfileSpec:
    """What devices apply (``RESOLVE_DEVICE_PROFILE``): each sensor with its sensor profile's
    type, unit, range and precision. A range with ``min == max`` (a sensor profile allows it,
    devices' ``ValidRange`` wants ``min < max``) is left out rather than refused there."""
    sensors = []
    for sensor in profile.sensors:
        kind = sensor_profiles[sensor.sensor_profile_id]
        valid = kind.valid_range
        sensors.append(
            api.ResolvedSensor(
                key=sensor.key,
                sensor_profile_id=kind.id,
                value_type=kind.value_type,
                unit=kind.unit,
                valid_range=valid if valid is not None and valid.min < valid.max else None,
                precision=kind.precision,
                component=sensor.component,
            )
        )
    return api.DeviceProfileSpec(
        id=profile.id,
        version=profile.version,
        name=profile.name,
        components=[api.ResolvedComponent(name=c.name, kind=c.kind) for c in profile.components],
        sensors=sensors,
        config_artefact_id=profile.config_artefact_id,
        expected_interval_seconds=profile.expected_interval_seconds,
        firmware_family=profile.firmware_family,
    )
