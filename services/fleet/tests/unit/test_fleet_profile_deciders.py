"""The sensor and device profile aggregates, the rule templates' shape, the templates an
expected interval implies, and the resolved profile devices apply (ADR 0092): given these
events, when this command, then these events."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import msgspec
import pytest

from outpost_contracts import fleet as api
from outpost_contracts.alerting import Condition, Severity
from outpost_contracts.base import Event
from outpost_contracts.errors import Conflict, NotFound, ValidationFailed
from outpost_contracts.registry import ValueType
from outpost_fleet.domain import profiles as domain

pytestmark = pytest.mark.unit

NOW = datetime(2025, 1, 1, tzinfo=UTC)
SP = UUID(int=10)
ARTEFACT = UUID(int=20)


def _fold(evolve: Any, events: list[Event], stream: UUID) -> Any:
    state = None
    for event in events:
        state = evolve(state, event, stream)
    return state


def _sensor(events: list[Event]) -> domain.SensorProfile | None:
    return _fold(domain.evolve_sensor_profile, events, SP)


TEMP = api.CreateSensorProfile(name="Temperature", unit="Cel", min=-40, max=85, precision=1)


def test_a_sensor_profile_is_created_changed_and_deleted() -> None:
    created = domain.decide_sensor_profile(None, TEMP, NOW)
    assert created == [
        api.SensorProfileCreated(
            name="Temperature",
            unit="Cel",
            value_type=ValueType.NUMBER,
            min=-40,
            max=85,
            precision=1,
        )
    ]
    state = _sensor(created)
    assert state is not None and state.version == 1 and state.unit == "Cel"
    changed = domain.decide_sensor_profile(
        state, api.SensorProfilePatch(unit="[degF]", max=185), NOW
    )
    assert len(changed) == 1 and isinstance(changed[0], api.SensorProfileChanged)
    assert changed[0].changed == ["unit", "max"] and changed[0].min == -40
    state = _sensor([*created, *changed])
    assert state is not None and (state.unit, state.max, state.version) == ("[degF]", 185, 2)
    assert domain.decide_sensor_profile(state, api.SensorProfilePatch(unit="[degF]"), NOW) == []
    gone = domain.decide_sensor_profile(state, domain.DeleteSensorProfile(), NOW)
    assert gone == [api.SensorProfileDeleted()]
    deleted = _sensor([*created, *changed, *gone])
    with pytest.raises(NotFound):
        domain.decide_sensor_profile(deleted, api.SensorProfilePatch(name="x"), NOW)


def test_a_sensor_profile_in_use_is_kept_and_bad_ones_refused() -> None:
    state = _sensor(domain.decide_sensor_profile(None, TEMP, NOW))
    user = UUID(int=99)
    with pytest.raises(Conflict) as refused:
        domain.decide_sensor_profile(state, domain.DeleteSensorProfile(used_by=(user,)), NOW)
    assert refused.value.details == {"deviceProfileIds": [str(user)]}
    with pytest.raises(ValidationFailed) as bad:
        domain.decide_sensor_profile(None, api.CreateSensorProfile(name="t", unit="degC"), NOW)
    assert [f.name for f in bad.value.fields] == ["unit"]
    with pytest.raises(ValidationFailed):  # the change is checked as a whole
        domain.decide_sensor_profile(state, api.SensorProfilePatch(min=100), NOW)
    with pytest.raises(ValidationFailed):
        domain.decide_sensor_profile(
            state, api.SensorProfilePatch(value_type=ValueType.STRING), NOW
        )


def _device(**fields: Any) -> api.CreateDeviceProfile:
    base: dict[str, Any] = {
        "name": "TH-1",
        "components": [api.ProfileComponent(name="probe")],
        "sensors": [api.ProfileSensor(key="temp", sensor_profile_id=SP, component="probe")],
    }
    return api.CreateDeviceProfile(**{**base, **fields})


def _create(spec: api.CreateDeviceProfile, **kw: Any) -> list[Event]:
    command = domain.CreateDeviceProfile(spec=spec, sensor_profiles=frozenset({SP}), **kw)
    return domain.decide_device_profile(None, command, NOW)


DP = UUID(int=30)


def _dp(events: list[Event]) -> domain.DeviceProfile:
    state = _fold(domain.evolve_device_profile, events, DP)
    assert state is not None
    return state  # type: ignore[no-any-return]


def test_a_device_profile_changes_with_its_new_version_in_the_event() -> None:
    created = _create(_device())
    state = _dp(created)
    assert state.version == 1 and state.sensors[0].component == "probe"
    change = domain.ChangeDeviceProfile(
        patch=api.DeviceProfilePatch(expected_interval_seconds=60, firmware_family="th"),
        sensor_profiles=frozenset({SP}),
    )
    changed = domain.decide_device_profile(state, change, NOW)
    assert len(changed) == 1 and isinstance(changed[0], api.DeviceProfileChanged)
    assert changed[0].changed == ["expectedIntervalSeconds", "firmwareFamily"]
    assert changed[0].profile_version == 2 and changed[0].sensors == _device().sensors
    state = _dp([*created, *changed])
    assert state.version == 2 and state.expected_interval_seconds == 60
    assert domain.decide_device_profile(state, change, NOW) == []  # no change, no event
    touched = domain.decide_device_profile(state, domain.SensorProfilesChanged(), NOW)
    assert isinstance(touched[0], api.DeviceProfileChanged)
    assert touched[0].changed == ["sensorProfiles"] and touched[0].profile_version == 3


def test_a_device_profile_names_known_sensor_profiles_and_an_artefact_that_exists() -> None:
    with pytest.raises(ValidationFailed) as bad:
        domain.decide_device_profile(
            None,
            domain.CreateDeviceProfile(
                spec=_device(config_artefact_id=ARTEFACT), artefact_exists=False
            ),
            NOW,
        )
    assert {f.name for f in bad.value.fields} == {"sensors[0].sensorProfileId", "configArtefactId"}
    state = _dp(_create(_device(config_artefact_id=ARTEFACT)))
    # a change that does not touch the artefact does not need it to be looked up again
    rename = domain.ChangeDeviceProfile(
        patch=api.DeviceProfilePatch(name="TH-2"),
        sensor_profiles=frozenset({SP}),
        artefact_exists=False,
    )
    assert domain.decide_device_profile(state, rename, NOW)


def test_a_device_profile_with_devices_is_kept() -> None:
    state = _dp(_create(_device()))
    with pytest.raises(Conflict) as refused:
        domain.decide_device_profile(state, domain.DeleteDeviceProfile(devices=3), NOW)
    assert refused.value.details == {"deviceCount": 3}
    assert domain.decide_device_profile(state, domain.DeleteDeviceProfile(), NOW) == [
        api.DeviceProfileDeleted()
    ]


GOOD = api.RuleTemplate(
    name="hot", sensor="temp", condition=Condition(op=">", threshold=30), severity=Severity.MAJOR
)


@pytest.mark.parametrize(
    ("template", "field"),
    [
        (msgspec.structs.replace(GOOD, sensor="nope"), "ruleTemplates[0].sensor"),
        (msgspec.structs.replace(GOOD, sensor=None), "ruleTemplates[0].sensor"),
        (
            msgspec.structs.replace(GOOD, condition=Condition(op=">")),
            "ruleTemplates[0].condition.threshold",
        ),
        (
            msgspec.structs.replace(GOOD, condition=Condition(op="outside", low=5, high=1)),
            "ruleTemplates[0].condition.high",
        ),
        (
            msgspec.structs.replace(GOOD, condition=Condition(op="nodata", seconds=1)),
            "ruleTemplates[0].condition.seconds",
        ),
        (
            msgspec.structs.replace(
                GOOD, condition=Condition(op="nodata", seconds=60), for_seconds=5
            ),
            "ruleTemplates[0].forSeconds",
        ),
        (
            msgspec.structs.replace(GOOD, clear=Condition(op="<", threshold=25), hysteresis=1),
            "ruleTemplates[0].hysteresis",
        ),
    ],
)
def test_rule_templates_have_an_alert_rules_shape(template: api.RuleTemplate, field: str) -> None:
    assert _create(_device(rule_templates=[GOOD]))
    offline = api.RuleTemplate(
        name="off", condition=Condition(op="offline", seconds=60), severity=Severity.MAJOR
    )
    assert _create(_device(rule_templates=[offline]))  # offline needs no sensor
    with pytest.raises(ValidationFailed) as bad:
        _create(_device(rule_templates=[template]))
    assert field in [f.name for f in bad.value.fields]


def test_the_expected_interval_implies_nodata_per_sensor_and_offline() -> None:
    state = _dp(_create(_device(expected_interval_seconds=60)))
    implied = domain.implied_rule_templates(state)
    assert [(t.sensor, t.condition.op, t.condition.seconds) for t in implied] == [
        ("temp", "nodata", 180),
        (None, "offline", 180),
    ]
    assert domain.implied_rule_templates(_dp(_create(_device()))) == []
    short = _dp(_create(_device(expected_interval_seconds=1)))
    assert domain.implied_rule_templates(short)[0].condition.seconds == 10  # alerting's minimum
    for template in implied:  # what alerting would accept
        assert domain.rule_template_problems(template, ["temp"], "t") == []


def test_resolve_fills_each_sensor_from_its_sensor_profile() -> None:
    state = _dp(_create(_device()))
    kinds = {SP: domain.SensorProfile(id=SP, name="T", unit="Cel", min=-40, max=85, precision=1)}
    spec = domain.resolve(state, kinds)
    assert spec.id == DP and spec.version == 1
    assert spec.components == [api.ResolvedComponent(name="probe")]
    (sensor,) = spec.sensors
    assert (sensor.key, sensor.unit, sensor.precision, sensor.component) == (
        "temp",
        "Cel",
        1,
        "probe",
    )
    assert sensor.valid_range is not None and sensor.valid_range.max == 85
    flat = {SP: msgspec.structs.replace(kinds[SP], min=5.0, max=5.0)}
    assert domain.resolve(state, flat).sensors[0].valid_range is None  # devices want min < max
