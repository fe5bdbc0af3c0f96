"""Issue 21 on the devices side, pure: a device's profileId, the plan of what a device
profile gives a device, the fleet and local layers of the desired state and the explanation
of each key (ADR 0091). No I/O."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from outpost_contracts import commands as api
from outpost_contracts.device_config import Source
from outpost_contracts.devices import CreateDevice, DevicePatch, DeviceUpdated
from outpost_contracts.errors import ValidationFailed
from outpost_contracts.fleet import (
    DeviceProfileSpec,
    ResolvedComponent,
    ResolvedSensor,
    TargetType,
)
from outpost_contracts.patch import merge_patch
from outpost_contracts.registry import ValidRange, ValueType
from outpost_devices.domain import commands as domain
from outpost_devices.domain import devices, profiles

pytestmark = pytest.mark.unit
NOW = datetime(2026, 12, 7, tzinfo=UTC)
DEVICE = uuid4()


# --- profileId on the device ------------------------------------------------------------


def _registered(**fields: Any) -> devices.Device:
    [event] = devices.decide(None, CreateDevice(name="d1", **fields), NOW)
    state = devices.evolve(None, event, DEVICE)
    assert state is not None
    return state


def test_a_device_is_registered_with_a_profile_and_patched_to_another_and_cleared() -> None:
    first, second = uuid4(), uuid4()
    device = _registered(profile_id=first)
    assert device.profile_id == first
    [event] = devices.decide(device, DevicePatch(profile_id=second), NOW)
    assert event == DeviceUpdated(changed=["profileId"], profile_id=second)
    moved = devices.evolve(device, event, DEVICE)
    assert moved is not None and moved.profile_id == second
    assert devices.decide(moved, DevicePatch(profile_id=second), NOW) == []
    [cleared] = devices.decide(moved, DevicePatch(profile_id=None), NOW)
    assert cleared == DeviceUpdated(changed=["profileId"], profile_id=None)


def test_a_patch_without_profile_id_leaves_it() -> None:
    device = _registered(profile_id=uuid4())
    [event] = devices.decide(device, DevicePatch(name="d2"), NOW)
    assert isinstance(event, DeviceUpdated) and event.changed == ["name"]
    after = devices.evolve(device, event, DEVICE)
    assert after is not None and after.profile_id == device.profile_id


# --- the assignment plan ----------------------------------------------------------------

KIND = uuid4()


def _sensor(key: str, **fields: Any) -> ResolvedSensor:
    values: dict[str, Any] = {"unit": "Cel", "value_type": ValueType.NUMBER, **fields}
    return ResolvedSensor(key=key, sensor_profile_id=KIND, **values)


PROFILE = DeviceProfileSpec(
    id=uuid4(),
    version=1,
    name="thermostat",
    components=[ResolvedComponent(name="board", kind="pcb"), ResolvedComponent(name="relay")],
    sensors=[
        _sensor("temp", valid_range=ValidRange(min=-40, max=85)),
        _sensor("hum", unit="%"),
        _sensor("fixed", valid_range=ValidRange(min=1, max=1)),  # devices need min < max
    ],
)


def test_a_bare_device_gets_every_component_and_sensor() -> None:
    plan = profiles.plan_assignment(PROFILE, [], [])
    assert [c.name for c in plan.add_components] == ["board", "relay"]
    assert [s.key for s in plan.declare_sensors] == ["temp", "hum", "fixed"]
    assert plan.declare_sensors[0].valid_range == ValidRange(min=-40, max=85)
    assert plan.declare_sensors[2].valid_range is None
    assert plan.update_sensors == ()


def test_what_the_device_has_stays_and_what_differs_is_aligned() -> None:
    have = [
        profiles.ExistingSensor(key="temp", value_type=ValueType.NUMBER, unit="K"),
        profiles.ExistingSensor(key="hum", value_type=ValueType.NUMBER, unit="%"),
        profiles.ExistingSensor(key="mine", value_type=ValueType.STRING),
    ]
    plan = profiles.plan_assignment(PROFILE, ["board", "extra"], have)
    assert [c.name for c in plan.add_components] == ["relay"]
    assert [s.key for s in plan.declare_sensors] == ["fixed"]
    assert [(s.key, s.unit) for s in plan.update_sensors] == [("temp", "Cel")]


def _carried_out(
    plan: profiles.AssignmentPlan, components: list[str], sensors: list[profiles.ExistingSensor]
) -> tuple[list[str], list[profiles.ExistingSensor]]:
    specs = {s.key: s for s in (*plan.declare_sensors, *plan.update_sensors)}
    kept = [s for s in sensors if s.key not in specs]
    made = [
        profiles.ExistingSensor(
            key=s.key, value_type=s.value_type, unit=s.unit, valid_range=s.valid_range
        )
        for s in specs.values()
    ]
    return [*components, *(c.name for c in plan.add_components)], [*kept, *made]


_KEYS = st.sampled_from(["temp", "hum", "fixed", "mine", "other"])
_EXISTING = st.lists(
    st.builds(
        profiles.ExistingSensor,
        key=_KEYS,
        value_type=st.sampled_from(list(ValueType)),
        unit=st.sampled_from([None, "Cel", "%", "K"]),
    ),
    unique_by=lambda s: s.key,
)


@settings(max_examples=200)
@given(
    components=st.lists(st.sampled_from(["board", "relay", "extra"]), unique=True),
    sensors=_EXISTING,
)
def test_carrying_a_plan_out_leaves_nothing_to_plan_and_removes_nothing(
    components: list[str], sensors: list[profiles.ExistingSensor]
) -> None:
    plan = profiles.plan_assignment(PROFILE, components, sensors)
    after_components, after_sensors = _carried_out(plan, components, sensors)
    assert profiles.plan_assignment(PROFILE, after_components, after_sensors).empty
    assert set(components) <= set(after_components)
    assert {s.key for s in sensors} <= {s.key for s in after_sensors}


# --- the desired state's layers ---------------------------------------------------------

BINDING = uuid4()


def _source(binding: UUID = BINDING, target: TargetType = TargetType.GROUP) -> Source:
    return Source(binding_id=binding, artefact_id=uuid4(), artefact_version=2, target_type=target)


def _run(state: domain.DesiredState | None, *commands: Any) -> domain.DesiredState | None:
    for command in commands:
        for event in domain.decide_desired(state, command, NOW):
            state = domain.evolve_desired(state, event, uuid4())
    return state


def _fleet(document: dict[str, Any], digest: str, **sources: Source) -> domain.SetFleet:
    return domain.SetFleet(
        device_id=DEVICE, document=document, sources=sources or {}, digest=digest
    )


def _local(desired: dict[str, Any], replace: bool = False) -> domain.ChangeDesired:
    return domain.ChangeDesired(device_id=DEVICE, desired=desired, replace=replace)


def test_local_keys_override_the_fleet_and_survive_its_changes() -> None:
    state = _run(None, _local({"led": False}), _fleet({"led": True, "rate": 60}, "d1"))
    assert state is not None and state.desired == {"led": False, "rate": 60}
    state = _run(state, _fleet({"led": True, "rate": 10}, "d2"))
    assert state is not None and state.desired == {"led": False, "rate": 10}
    assert state.digest == "d2" and state.local == {"led": False}


def test_the_same_digest_again_is_no_event() -> None:
    state = _run(None, _fleet({"rate": 60}, "d1"))
    assert domain.decide_desired(state, _fleet({"rate": 60}, "d1"), NOW) == []


def test_a_local_null_removes_a_fleet_key_on_this_device_only_while_the_fleet_has_it() -> None:
    state = _run(None, _fleet({"led": True, "rate": 60}, "d1"), _local({"led": None}))
    assert state is not None and state.desired == {"rate": 60}
    assert state.local == {"led": None}
    # Without a fleet key under it, a null is nothing: the local layer is the desired state.
    bare = _run(None, _local({"a": 1}), _local({"a": None, "b": None}))
    assert bare is not None and bare.local == {} and bare.desired == {}


def test_put_replaces_the_local_layer_and_keeps_the_fleets() -> None:
    state = _run(None, _fleet({"rate": 60}, "d1"), _local({"a": 1}))
    state = _run(state, _local({"b": 2}, replace=True))
    assert state is not None and state.desired == {"rate": 60, "b": 2}


def test_a_fleet_document_too_large_for_the_device_is_refused_whole() -> None:
    state = _run(None, _local({"a": 1}))
    big = {"blob": "x" * (api.MAX_DOCUMENT_BYTES + 1)}
    with pytest.raises(ValidationFailed):
        domain.decide_desired(state, _fleet(big, "big"), NOW)


def test_events_before_the_layers_read_as_all_local() -> None:
    old = api.DesiredStateChanged(device_id=DEVICE, desired={"a": 1})
    state = domain.evolve_desired(None, old, uuid4())
    assert state.local == {"a": 1} and state.digest == ""
    after = _run(state, _fleet({"a": 5, "b": 2}, "d1"))
    assert after is not None and after.desired == {"a": 1, "b": 2}


_VALUES = st.recursive(
    st.none() | st.integers(0, 3) | st.booleans(),
    lambda inner: st.dictionaries(st.sampled_from(["a", "b", "c"]), inner, max_size=3),
    max_leaves=8,
)
_DOCS = st.dictionaries(st.sampled_from(["a", "b", "c", "d"]), _VALUES, max_size=4)


@settings(max_examples=300)
@given(fleet=_DOCS, patches=st.lists(_DOCS, max_size=4))
def test_without_a_fleet_layer_patches_merge_as_before(
    fleet: dict[str, Any], patches: list[dict[str, Any]]
) -> None:
    """With no fleet document, the layers change nothing: each PATCH is merged into the
    desired state (RFC 7396); and a fleet document always shows through where the local
    layer leaves a key alone."""
    state: domain.DesiredState | None = None
    expected: dict[str, Any] = {}
    for patch in patches:
        state = _run(state, _local(patch))
        expected = merge_patch(expected, patch)
        assert (state.desired if state else {}) == expected
    layered = _run(state, _fleet(merge_patch({}, fleet), "d"))
    assert layered is not None
    assert layered.desired == merge_patch(merge_patch({}, fleet), layered.local)


# --- explain ----------------------------------------------------------------------------


def test_explain_names_the_binding_of_each_fleet_leaf_and_the_device_for_local_ones() -> None:
    group, org = _source(BINDING, TargetType.GROUP), _source(uuid4(), TargetType.ORGANIZATION)
    sources = {"/sampling/interval": group, "/sampling/unit": org, "/led": org}
    document = {"sampling": {"interval": 10, "unit": "s"}, "led": True}
    state = _run(
        None,
        domain.SetFleet(device_id=DEVICE, document=document, sources=sources, digest="d"),
        _local({"led": False, "debug": {"on": True}}),
    )
    assert state is not None
    explained = domain.explain(state.desired, state.local, state.sources)
    assert explained["/sampling/interval"] == api.KeySource(
        source="binding",
        binding_id=group.binding_id,
        artefact_id=group.artefact_id,
        artefact_version=2,
        target_type=TargetType.GROUP,
    )
    assert explained["/sampling/unit"].binding_id == org.binding_id
    assert explained["/led"] == api.KeySource(source="device")
    assert explained["/debug/on"] == api.KeySource(source="device")
    assert set(explained) == {"/sampling/interval", "/sampling/unit", "/led", "/debug/on"}
    encoded = msgspec.json.decode(msgspec.json.encode(explained["/led"]))
    assert encoded == {"source": "device"}  # no nulls for a device's key


def test_explain_escapes_pointers() -> None:
    explained = domain.explain({"a/b": {"~c": 1}}, {"a/b": {"~c": 1}}, {})
    assert list(explained) == ["/a~1b/~0c"]
