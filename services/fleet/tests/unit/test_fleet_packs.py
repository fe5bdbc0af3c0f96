"""The pack planner: import, re-import, upgrade with conflicts, uninstall (ADR 0088)."""

from __future__ import annotations

from uuid import UUID

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from outpost_contracts.errors import Conflict, ValidationFailed
from outpost_fleet.domain.packs import (
    Action,
    Install,
    ItemId,
    ItemKind,
    PackDocument,
    PackItem,
    Plan,
    digest,
    installed,
    plan_import,
    plan_uninstall,
)

pytestmark = pytest.mark.unit


def item(kind: ItemKind, key: str, **content: object) -> PackItem:
    return PackItem(kind=kind, key=key, content=dict(content))


V1 = PackDocument(
    name="weather",
    version="1.0.0",
    items=(
        item(ItemKind.DEVICE_PROFILE, "station", name="Station", sensors=["temp"]),
        item(ItemKind.SENSOR_PROFILE, "temp", unit="Cel"),
        item(ItemKind.CONFIG_ARTEFACT, "sampling", interval=60),
        item(ItemKind.RULE_TEMPLATE, "hot", threshold=40),
    ),
)


def carry_out(document: PackDocument, plan: Plan, previous: Install | None) -> Install:
    """What the use case does: create what the plan creates (a resource id each)."""
    created: dict[ItemId, UUID] = {}
    for n, step in enumerate(plan.steps):
        if step.action is Action.CREATE:
            created[(step.kind, step.key)] = UUID(int=1000 + n)
    return installed(document, plan, previous, created)


def edited_by_user(install: Install, kind: ItemKind, key: str) -> Install:
    items = dict(install.items)
    items[(kind, key)] = msgspec.structs.replace(items[(kind, key)], current_digest="edited")
    return msgspec.structs.replace(install, items=items)


def test_a_first_import_creates_everything_in_dependency_order() -> None:
    plan = plan_import(V1, None)
    assert [(s.action, s.kind, s.key) for s in plan.steps] == [
        (Action.CREATE, ItemKind.SENSOR_PROFILE, "temp"),
        (Action.CREATE, ItemKind.CONFIG_ARTEFACT, "sampling"),
        (Action.CREATE, ItemKind.RULE_TEMPLATE, "hot"),
        (Action.CREATE, ItemKind.DEVICE_PROFILE, "station"),
    ]


def test_importing_the_same_version_twice_plans_nothing() -> None:
    install = carry_out(V1, plan_import(V1, None), None)
    again = plan_import(V1, install)
    assert again.changes == ()
    assert {s.action for s in again.steps} == {Action.UNCHANGED}
    assert carry_out(V1, again, install) == install


def test_a_version_is_immutable_and_there_is_no_downgrade() -> None:
    install = carry_out(V1, plan_import(V1, None), None)
    tampered = msgspec.structs.replace(V1, items=V1.items[:1])
    with pytest.raises(Conflict):
        plan_import(tampered, install)
    older = msgspec.structs.replace(V1, version="0.9.9")
    with pytest.raises(Conflict):
        plan_import(older, install)
    with pytest.raises(Conflict):
        plan_import(msgspec.structs.replace(V1, name="other"), install)
    with pytest.raises(ValidationFailed):
        plan_import(msgspec.structs.replace(V1, version="1.0"), None)
    with pytest.raises(ValidationFailed):
        plan_import(msgspec.structs.replace(V1, items=(V1.items[0], V1.items[0])), None)


def test_an_upgrade_changes_what_users_left_alone_and_reports_what_they_changed() -> None:
    install = carry_out(V1, plan_import(V1, None), None)
    install = edited_by_user(install, ItemKind.RULE_TEMPLATE, "hot")
    install = edited_by_user(install, ItemKind.CONFIG_ARTEFACT, "sampling")
    v2 = PackDocument(
        name="weather",
        version="1.1.0",
        items=(
            item(ItemKind.SENSOR_PROFILE, "temp", unit="Cel"),  # the same
            item(ItemKind.DEVICE_PROFILE, "station", name="Station 2", sensors=["temp"]),
            item(ItemKind.RULE_TEMPLATE, "hot", threshold=45),  # the user changed it
            item(ItemKind.SENSOR_PROFILE, "hum", unit="%"),  # new
            # "sampling" is gone from the pack, and the user changed it
        ),
    )
    plan = plan_import(v2, install)
    assert [(s.action, s.kind, s.key) for s in plan.steps] == [
        (Action.CREATE, ItemKind.SENSOR_PROFILE, "hum"),
        (Action.UNCHANGED, ItemKind.SENSOR_PROFILE, "temp"),
        (Action.CONFLICT, ItemKind.CONFIG_ARTEFACT, "sampling"),
        (Action.CONFLICT, ItemKind.RULE_TEMPLATE, "hot"),
        (Action.UPGRADE, ItemKind.DEVICE_PROFILE, "station"),
    ]
    assert [s.key for s in plan.conflicts] == ["sampling", "hot"]
    station = next(s for s in plan.steps if s.key == "station")
    assert station.resource_id == install.items[(ItemKind.DEVICE_PROFILE, "station")].resource_id
    after = carry_out(v2, plan, install)
    # The conflict is still recorded against what was installed, so it stays a conflict.
    assert after.items[(ItemKind.RULE_TEMPLATE, "hot")].user_changed
    assert plan_import(v2, after).changes == ()


def test_an_item_dropped_by_the_pack_is_removed_if_users_left_it_alone() -> None:
    install = carry_out(V1, plan_import(V1, None), None)
    v2 = msgspec.structs.replace(V1, version="2.0.0", items=V1.items[:2])
    plan = plan_import(v2, install)
    assert [(s.action, s.key) for s in plan.changes] == [
        (Action.REMOVE, "hot"),
        (Action.REMOVE, "sampling"),
    ]
    after = carry_out(v2, plan, install)
    assert set(after.items) == {(i.kind, i.key) for i in v2.items}


def test_an_item_the_user_deleted_is_not_created_again_on_upgrade() -> None:
    install = carry_out(V1, plan_import(V1, None), None)
    items = dict(install.items)
    key = (ItemKind.RULE_TEMPLATE, "hot")
    items[key] = msgspec.structs.replace(items[key], current_digest=None)
    install = msgspec.structs.replace(install, items=items)
    v2 = PackDocument(
        name="weather",
        version="1.0.1",
        items=(*V1.items[:3], item(ItemKind.RULE_TEMPLATE, "hot", threshold=50)),
    )
    (step,) = [s for s in plan_import(v2, install).steps if s.key == "hot"]
    assert step.action is Action.CONFLICT


def test_uninstall_removes_only_what_the_pack_created_and_still_exists() -> None:
    install = carry_out(V1, plan_import(V1, None), None)
    items = dict(install.items)
    key = (ItemKind.RULE_TEMPLATE, "hot")
    items[key] = msgspec.structs.replace(items[key], current_digest=None)
    plan = plan_uninstall(msgspec.structs.replace(install, items=items))
    assert [(s.action, s.kind, s.key) for s in plan.steps] == [
        (Action.REMOVE, ItemKind.DEVICE_PROFILE, "station"),
        (Action.REMOVE, ItemKind.CONFIG_ARTEFACT, "sampling"),
        (Action.REMOVE, ItemKind.SENSOR_PROFILE, "temp"),
    ]
    assert {s.resource_id for s in plan.steps} <= {i.resource_id for i in install.items.values()}


def test_the_digest_is_canonical() -> None:
    assert digest({"a": 1, "b": [1, 2]}) == digest({"b": [1, 2], "a": 1})
    assert digest({"a": 1}) != digest({"a": 2})


KEYS = st.sampled_from(["a", "b", "c", "d"])
CONTENT = st.dictionaries(st.sampled_from(["x", "y"]), st.integers(0, 3), max_size=2)


@st.composite
def documents(draw: st.DrawFn, version: str) -> PackDocument:
    ids = draw(st.lists(st.tuples(st.sampled_from(list(ItemKind)), KEYS), unique=True))
    items = tuple(PackItem(kind=k, key=key, content=draw(CONTENT)) for k, key in ids)
    return PackDocument(name="p", version=version, items=items)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    documents("1.0.0"),
    documents("1.2.0"),
    st.sets(st.tuples(st.sampled_from(list(ItemKind)), KEYS)),
)
def test_import_is_idempotent_and_an_upgrade_then_plans_nothing(
    v1: PackDocument, v2: PackDocument, user_edits: set[ItemId]
) -> None:
    install = carry_out(v1, plan_import(v1, None), None)
    assert plan_import(v1, install).changes == ()
    for edit in user_edits & set(install.items):
        install = edited_by_user(install, *edit)
    plan = plan_import(v2, install)
    for step in plan.changes:  # nothing a user changed is touched
        assert (step.kind, step.key) not in user_edits or step.action is Action.CREATE
    upgraded = carry_out(v2, plan, install)
    assert plan_import(v2, upgraded).changes == ()
    assert {(s.kind, s.key) for s in plan_uninstall(upgraded).steps} <= set(upgraded.items)
