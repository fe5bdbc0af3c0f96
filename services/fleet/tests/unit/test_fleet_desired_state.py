"""The effective desired state: RFC 7396 merging, the precedence order and the explanation
(ADR 0088), with examples and properties."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from outpost_contracts.fleet import Target, TargetType
from outpost_contracts.patch import merge_patch
from outpost_fleet.domain.desired_state import (
    BindingRef,
    DeviceFacts,
    ResolvedBinding,
    effective_state,
    leaves,
    pointer,
    precedence,
    resolve,
)

pytestmark = pytest.mark.unit
PROPERTY = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

DEVICE = UUID(int=1)
SITE = UUID(int=2)
GROUP = UUID(int=3)
PROFILE = UUID(int=4)
ARTEFACT = UUID(int=99)
FACTS = DeviceFacts(id=DEVICE, site_id=SITE, group_ids=frozenset({GROUP}), profile_id=PROFILE)
TARGET_IDS = {
    TargetType.ORGANIZATION: None,
    TargetType.PROFILE: PROFILE,
    TargetType.SITE: SITE,
    TargetType.GROUP: GROUP,
    TargetType.DEVICE: DEVICE,
}


def bound(
    n: int, kind: TargetType, document: dict[str, Any], priority: int = 0, target_id: Any = ...
) -> ResolvedBinding:
    tid = TARGET_IDS[kind] if target_id is ... else target_id
    return ResolvedBinding(
        binding=BindingRef(id=UUID(int=n), target=Target(type=kind, id=tid), priority=priority),
        artefact_id=ARTEFACT,
        artefact_version=1,
        document=document,
    )


# RFC 7396, Appendix A: (target, patch, result), every example.
RFC_7396_APPENDIX_A = [
    ({"a": "b"}, {"a": "c"}, {"a": "c"}),
    ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
    ({"a": "b"}, {"a": None}, {}),
    ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
    ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
    ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
    ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
    ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
    (["a", "b"], ["c", "d"], ["c", "d"]),
    ({"a": "b"}, ["c"], ["c"]),
    ({"a": "foo"}, None, None),
    ({"a": "foo"}, "bar", "bar"),
    ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
    ([1, 2], {"a": "b", "c": None}, {"a": "b"}),
    ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
]


@pytest.mark.parametrize(("target", "patch", "result"), RFC_7396_APPENDIX_A)
def test_merge_patch_is_rfc_7396_appendix_a(target: Any, patch: Any, result: Any) -> None:
    assert merge_patch(target, patch) == result


@pytest.mark.parametrize(
    ("target", "patch", "result"),
    [
        (t, p, r)
        for t, p, r in RFC_7396_APPENDIX_A
        if isinstance(t, dict) and isinstance(p, dict) and None not in t.values()
    ],
)
def test_a_device_binding_over_an_organization_binding_merges_as_rfc_7396(
    target: dict[str, Any], patch: dict[str, Any], result: dict[str, Any]
) -> None:
    state = effective_state(
        FACTS,
        [bound(2, TargetType.DEVICE, patch), bound(1, TargetType.ORGANIZATION, target)],
    )
    assert state.document == result


def test_more_specific_targets_win_whatever_their_priority() -> None:
    bindings = [
        bound(1, TargetType.DEVICE, {"level": "device"}, priority=-1000),
        bound(2, TargetType.GROUP, {"level": "group", "g": 1}, priority=1000),
        bound(3, TargetType.SITE, {"level": "site", "s": 1}, priority=1000),
        bound(4, TargetType.PROFILE, {"level": "profile", "p": 1}, priority=1000),
        bound(5, TargetType.ORGANIZATION, {"level": "org", "o": 1}, priority=1000),
    ]
    state = effective_state(FACTS, bindings)
    assert state.document == {"level": "device", "g": 1, "s": 1, "p": 1, "o": 1}
    assert state.applied == tuple(UUID(int=n) for n in (5, 4, 3, 2, 1))
    assert state.explanation == {
        "/level": UUID(int=1),
        "/g": UUID(int=2),
        "/s": UUID(int=3),
        "/p": UUID(int=4),
        "/o": UUID(int=5),
    }


def test_within_a_target_type_the_higher_priority_wins_then_the_higher_id() -> None:
    low = bound(9, TargetType.GROUP, {"x": "low"}, priority=1)
    high = bound(1, TargetType.GROUP, {"x": "high"}, priority=2)
    assert effective_state(FACTS, [high, low]).document == {"x": "high"}
    tie_a = bound(7, TargetType.GROUP, {"x": "a"}, priority=5)
    tie_b = bound(8, TargetType.GROUP, {"x": "b"}, priority=5)
    assert effective_state(FACTS, [tie_b, tie_a]).document == {"x": "b"}
    assert effective_state(FACTS, [tie_a, tie_b]).explanation == {"/x": UUID(int=8)}


def test_bindings_on_other_targets_do_not_apply() -> None:
    other = UUID(int=1234)
    bindings = [
        bound(1, TargetType.SITE, {"a": 1}, target_id=other),
        bound(2, TargetType.GROUP, {"b": 1}, target_id=other),
        bound(3, TargetType.PROFILE, {"c": 1}, target_id=other),
        bound(4, TargetType.DEVICE, {"d": 1}, target_id=other),
        bound(5, TargetType.ORGANIZATION, {"e": 1}),
    ]
    state = effective_state(FACTS, bindings)
    assert state.document == {"e": 1}
    assert state.applied == (UUID(int=5),)
    bare = DeviceFacts(id=DEVICE)
    assert effective_state(bare, [bound(1, TargetType.SITE, {"a": 1})]).document == {}


def test_a_null_in_a_more_specific_binding_removes_the_key_and_its_explanation() -> None:
    state = effective_state(
        FACTS,
        [
            bound(1, TargetType.ORGANIZATION, {"log": {"level": "info", "sink": "udp"}}),
            bound(2, TargetType.DEVICE, {"log": {"sink": None}}),
        ],
    )
    assert state.document == {"log": {"level": "info"}}
    assert state.explanation == {"/log/level": UUID(int=1)}


def test_an_object_emptied_by_a_binding_is_a_leaf_that_binding_explains() -> None:
    state = effective_state(
        FACTS,
        [
            bound(1, TargetType.ORGANIZATION, {"a": {"x": 1}, "k/~": 2}),
            bound(2, TargetType.GROUP, {"a": {"x": None}}),
        ],
    )
    assert state.document == {"a": {}, "k/~": 2}
    assert state.explanation == {"/a": UUID(int=2), "/k~1~0": UUID(int=1)}


def test_the_design_documents_example() -> None:
    state = effective_state(
        FACTS,
        [
            bound(3, TargetType.DEVICE, {"led": None, "debug": True}),
            bound(2, TargetType.GROUP, {"sampling": {"interval": 10}}),
            bound(
                1, TargetType.ORGANIZATION, {"sampling": {"interval": 60, "unit": "s"}, "led": True}
            ),
        ],
    )
    assert state.document == {"sampling": {"interval": 10, "unit": "s"}, "debug": True}
    assert state.explanation == {
        "/sampling/interval": UUID(int=2),
        "/sampling/unit": UUID(int=1),
        "/debug": UUID(int=3),
    }


def test_size_says_whether_devices_desired_state_can_carry_it() -> None:
    small = effective_state(FACTS, [bound(1, TargetType.DEVICE, {"a": 1})])
    assert small.size == len(b'{"a":1}') and small.deliverable
    big = effective_state(FACTS, [bound(1, TargetType.DEVICE, {"a": "x" * 20_000})])
    assert not big.deliverable


def test_resolve_takes_the_pinned_version_or_the_newest_live_one() -> None:
    ref = BindingRef(id=UUID(int=1), target=Target(type=TargetType.ORGANIZATION), priority=0)
    versions = {1: {"v": 1}, 3: {"v": 3}}
    latest = resolve(ref, ARTEFACT, None, versions)
    assert latest is not None and (latest.artefact_version, latest.document) == (3, {"v": 3})
    pinned = resolve(ref, ARTEFACT, 1, versions)
    assert pinned is not None and pinned.document == {"v": 1}
    assert resolve(ref, ARTEFACT, 2, versions) is None
    assert resolve(ref, ARTEFACT, None, {}) is None


# Properties. Few keys and small priorities, so documents overlap and priorities tie.
KEYS = st.sampled_from(["a", "b", "c", "d/e", "~"])
SCALARS = st.one_of(st.booleans(), st.integers(-3, 3), st.sampled_from(["x", "y"]))
VALUES = st.recursive(
    st.one_of(SCALARS, st.none(), st.lists(SCALARS, max_size=2)),
    lambda inner: st.dictionaries(KEYS, inner, max_size=3),
    max_leaves=8,
)
DOCUMENTS = st.dictionaries(KEYS, VALUES, max_size=4)


@st.composite
def binding_sets(draw: st.DrawFn) -> list[ResolvedBinding]:
    count = draw(st.integers(0, 7))
    ids = draw(st.lists(st.integers(1, 2**128 - 1), min_size=count, max_size=count, unique=True))
    return [
        bound(
            n,
            draw(st.sampled_from(list(TargetType))),
            draw(DOCUMENTS),
            priority=draw(st.integers(-2, 2)),
        )
        for n in ids
    ]


@PROPERTY
@given(st.data())
def test_the_result_does_not_depend_on_the_order_bindings_come_in(data: st.DataObject) -> None:
    bindings = data.draw(binding_sets())
    shuffled = data.draw(st.permutations(bindings))
    assert effective_state(FACTS, shuffled) == effective_state(FACTS, bindings)


@PROPERTY
@given(binding_sets())
def test_the_result_is_the_rfc_7396_fold_in_precedence_order(
    bindings: list[ResolvedBinding],
) -> None:
    expected: dict[str, Any] = {}
    for b in sorted(bindings, key=lambda b: precedence(b.binding)):
        expected = merge_patch(expected, b.document)
    assert effective_state(FACTS, bindings).document == expected


@PROPERTY
@given(binding_sets())
def test_the_explanation_names_a_binding_for_every_leaf_and_only_leaves(
    bindings: list[ResolvedBinding],
) -> None:
    state = effective_state(FACTS, bindings)
    assert set(state.explanation) == {pointer(p) for p in leaves(state.document)}
    by_id = {b.binding.id: b.document for b in bindings}
    for path in leaves(state.document):
        owner = by_id[state.explanation[pointer(path)]]
        value: Any = state.document
        named: Any = owner
        for part in path:
            value, named = value[part], named[part]
        if value != {}:
            assert named == value  # the binding named sets exactly that value
