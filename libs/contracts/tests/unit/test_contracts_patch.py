"""``outpost_contracts.patch``: the merge-patch helpers every decider shares."""

from __future__ import annotations

import msgspec
import pytest

from outpost_contracts import patch
from outpost_contracts.errors import NotFound

pytestmark = pytest.mark.unit


class State(msgspec.Struct, frozen=True):
    name: str = "a"
    tags: tuple[str, ...] = ()
    deleted: bool = False


class Change(msgspec.Struct, frozen=True):
    name: str | msgspec.UnsetType = msgspec.UNSET
    tags: list[str] | msgspec.UnsetType | None = msgspec.UNSET


FIELDS = {"name": "name", "tags": "tags"}
CONVERT = {"tags": lambda _state, value: tuple(value or ())}


def test_live_refuses_a_missing_or_deleted_aggregate() -> None:
    state = State()
    assert patch.live(state, "thing") is state
    with pytest.raises(NotFound, match="no such thing"):
        patch.live(None, "thing")
    with pytest.raises(NotFound, match="no such thing"):
        patch.live(State(deleted=True), "thing")


def test_changes_keep_only_set_fields_that_differ_after_conversion() -> None:
    state = State(name="a", tags=("x",))
    assert patch.changes(state, Change(), FIELDS, CONVERT) == {}
    assert patch.changes(state, Change(name="a", tags=["x"]), FIELDS, CONVERT) == {}
    assert patch.changes(state, Change(name="b"), FIELDS, CONVERT) == {"name": "b"}
    assert patch.changes(state, Change(tags=None), FIELDS, CONVERT) == {"tags": ()}
    # without the conversion a list never equals the state's tuple
    assert patch.changes(state, Change(tags=["x"]), FIELDS) == {"tags": ["x"]}


def test_merge_patch_is_rfc_7396_and_leaves_its_inputs_alone() -> None:
    target = {"a": {"b": 1, "c": 2}, "d": [1]}
    merged = patch.merge_patch(target, {"a": {"b": None, "e": 3}, "d": {"x": None}})
    assert merged == {"a": {"c": 2, "e": 3}, "d": {}}
    assert target == {"a": {"b": 1, "c": 2}, "d": [1]}
    assert patch.merge_patch(target, ["x"]) == ["x"]
