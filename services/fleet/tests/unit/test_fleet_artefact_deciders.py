"""Config artefacts and desired-state bindings: given events, when a command, then events
(ADR 0088); and the JSON Schema check the use case hands the artefact decider."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

import msgspec
import pytest

from outpost_contracts.base import Event
from outpost_contracts.errors import Conflict, NotFound, ValidationFailed
from outpost_contracts.fleet import (
    MAX_ARTEFACT_BYTES,
    ConfigArtefactCreated,
    ConfigArtefactDeleted,
    ConfigArtefactVersionDeleted,
    ConfigArtefactVersionPublished,
    DesiredStateBindingChanged,
    DesiredStateBindingCreated,
    DesiredStateBindingRemoved,
    Target,
    TargetType,
)
from outpost_fleet.adapters.json_schema import problems
from outpost_fleet.domain import artefacts, bindings
from outpost_fleet.domain.artefacts import (
    CreateArtefact,
    DeleteArtefact,
    DeleteVersion,
    PublishVersion,
)
from outpost_fleet.domain.bindings import ChangeBinding, CreateBinding, RemoveBinding

pytestmark = pytest.mark.unit
NOW = datetime(2026, 12, 7, tzinfo=UTC)
SCHEMA = {"type": "object", "properties": {"interval": {"type": "integer", "minimum": 1}}}


def given(evolve: Any, events: list[Event]) -> Any:
    state = None
    sid = uuid4()
    for e in events:
        state = evolve(state, e, sid)
    return state


def created(document: dict[str, Any] | None = None, schema: Any = None) -> list[Event]:
    return artefacts.decide(
        None, CreateArtefact(name="sampling", document=document or {"a": 1}, schema=schema), NOW
    )


def test_creating_an_artefact_publishes_version_1() -> None:
    events = created({"interval": 60}, SCHEMA)
    assert events == [
        ConfigArtefactCreated(name="sampling"),
        ConfigArtefactVersionPublished(version=1, document={"interval": 60}, schema=SCHEMA),
    ]
    state = given(artefacts.evolve, events)
    assert state.latest.version == 1 and state.version == 2


def test_every_change_is_a_new_version_and_the_same_document_is_no_change() -> None:
    state = given(artefacts.evolve, created({"interval": 60}, SCHEMA))
    assert artefacts.decide(state, PublishVersion(document={"interval": 60}), NOW) == []
    events = artefacts.decide(state, PublishVersion(document={"interval": 30}), NOW)
    assert events == [
        ConfigArtefactVersionPublished(version=2, document={"interval": 30}, schema=SCHEMA)
    ]
    state = given(artefacts.evolve, [*created({"interval": 60}, SCHEMA), *events])
    assert sorted(state.versions) == [1, 2]
    assert state.versions[1].document == {"interval": 60}  # old versions stay readable


def test_version_numbers_are_never_reused_after_a_delete() -> None:
    history = [
        *created(),
        ConfigArtefactVersionPublished(version=2, document={"a": 2}),
        ConfigArtefactVersionDeleted(version=2),
    ]
    state = given(artefacts.evolve, history)
    (event,) = artefacts.decide(state, PublishVersion(document={"a": 3}), NOW)
    assert isinstance(event, ConfigArtefactVersionPublished) and event.version == 3


def test_the_schema_carries_over_unless_replaced() -> None:
    state = given(artefacts.evolve, created({"interval": 60}, SCHEMA))
    assert artefacts.schema_for(state, PublishVersion(document={})) == SCHEMA
    dropped = PublishVersion(document={}, replace_schema=True)
    assert artefacts.schema_for(state, dropped) is None
    (event,) = artefacts.decide(state, dropped, NOW)
    assert isinstance(event, ConfigArtefactVersionPublished) and event.schema is None


def test_a_document_the_schema_refuses_is_a_validation_error() -> None:
    found = problems({"interval": 0}, SCHEMA)
    assert found == ("/interval: 0 is less than the minimum of 1",)
    with pytest.raises(ValidationFailed) as refused:
        artefacts.decide(
            None,
            CreateArtefact(
                name="s", document={"interval": 0}, schema=SCHEMA, schema_problems=found
            ),
            NOW,
        )
    assert [f.message for f in refused.value.fields] == list(found)


def test_the_json_schema_check() -> None:
    assert problems({"interval": 5}, SCHEMA) == ()
    assert problems({"interval": 5}, None) == ()
    (bad_schema,) = problems({}, {"type": "no-such-type"})
    assert bad_schema.startswith("schema: not a valid JSON Schema")
    # A remote $ref is not fetched: it is a problem.
    (remote,) = problems({}, {"$ref": "https://example.invalid/schema.json"})
    assert "does not resolve" in remote
    local = {"$defs": {"n": {"type": "integer"}}, "properties": {"n": {"$ref": "#/$defs/n"}}}
    assert problems({"n": "x"}, local) == ("/n: 'x' is not of type 'integer'",)


@pytest.mark.parametrize(
    "document",
    [["not", "an", "object"], {"a": "x" * MAX_ARTEFACT_BYTES}],
    ids=["not-an-object", "too-large"],
)
def test_documents_that_are_not_objects_or_too_large_are_refused(document: Any) -> None:
    with pytest.raises(ValidationFailed):
        artefacts.decide(None, CreateArtefact(name="s", document=document), NOW)


def test_at_the_size_limit_a_document_is_accepted() -> None:
    filler = MAX_ARTEFACT_BYTES - len(msgspec.json.encode({"a": ""}))
    document = {"a": "x" * filler}
    assert len(msgspec.json.encode(document)) == MAX_ARTEFACT_BYTES
    assert len(artefacts.decide(None, CreateArtefact(name="s", document=document), NOW)) == 2


def test_a_version_in_use_cannot_be_deleted() -> None:
    history = [*created(), ConfigArtefactVersionPublished(version=2, document={"a": 2})]
    state = given(artefacts.evolve, history)
    with pytest.raises(Conflict) as refused:
        artefacts.decide(state, DeleteVersion(version=1, used_by=("binding b1",)), NOW)
    assert refused.value.details == {"usedBy": ["binding b1"]}
    assert artefacts.decide(state, DeleteVersion(version=1), NOW) == [
        ConfigArtefactVersionDeleted(version=1)
    ]
    with pytest.raises(NotFound):
        artefacts.decide(state, DeleteVersion(version=7), NOW)


def test_the_last_version_goes_with_the_artefact() -> None:
    state = given(artefacts.evolve, created())
    with pytest.raises(Conflict):
        artefacts.decide(state, DeleteVersion(version=1), NOW)
    with pytest.raises(Conflict):
        artefacts.decide(state, DeleteArtefact(used_by=("binding b1",)), NOW)
    assert artefacts.decide(state, DeleteArtefact(), NOW) == [ConfigArtefactDeleted()]
    gone = given(artefacts.evolve, [*created(), ConfigArtefactDeleted()])
    with pytest.raises(NotFound):
        artefacts.decide(gone, PublishVersion(document={}), NOW)


ARTEFACT = UUID(int=7)
GROUP = Target(type=TargetType.GROUP, id=UUID(int=8))


def test_a_binding_attaches_an_existing_version_or_latest() -> None:
    command = CreateBinding(
        artefact_id=ARTEFACT, target=GROUP, priority=5, artefact_versions=frozenset({1, 2})
    )
    assert bindings.decide(None, command, NOW) == [
        DesiredStateBindingCreated(artefact_id=ARTEFACT, target=GROUP, priority=5)
    ]
    pinned = msgspec.structs.replace(command, artefact_version=2)
    (event,) = bindings.decide(None, pinned, NOW)
    assert isinstance(event, DesiredStateBindingCreated) and event.artefact_version == 2
    with pytest.raises(ValidationFailed):
        bindings.decide(None, msgspec.structs.replace(command, artefact_version=3), NOW)


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        ({"artefact_versions": frozenset()}, NotFound),  # another organization's artefact
        ({"target_exists": False}, NotFound),
        ({"target": Target(type=TargetType.DEVICE)}, ValidationFailed),
        ({"target": Target(type=TargetType.ORGANIZATION, id=UUID(int=1))}, ValidationFailed),
        ({"priority": 1001}, ValidationFailed),
    ],
)
def test_bindings_that_cannot_be(changes: dict[str, Any], error: type[Exception]) -> None:
    command = CreateBinding(artefact_id=ARTEFACT, target=GROUP, artefact_versions=frozenset({1}))
    with pytest.raises(error):
        bindings.decide(None, msgspec.structs.replace(command, **changes), NOW)


def test_changing_and_removing_a_binding() -> None:
    state = given(
        bindings.evolve,
        [DesiredStateBindingCreated(artefact_id=ARTEFACT, target=GROUP, priority=0)],
    )
    assert bindings.decide(state, ChangeBinding(priority=0), NOW) == []
    assert bindings.decide(state, ChangeBinding(priority=3), NOW) == [
        DesiredStateBindingChanged(changed=["priority"], priority=3)
    ]
    with pytest.raises(ValidationFailed):
        bindings.decide(state, ChangeBinding(artefact_version=4), NOW)
    pin = ChangeBinding(artefact_version=4, artefact_versions=frozenset({4}))
    assert bindings.decide(state, pin, NOW) == [
        DesiredStateBindingChanged(changed=["artefactVersion"], priority=0, artefact_version=4)
    ]
    removed = DesiredStateBindingRemoved(artefact_id=ARTEFACT)
    assert bindings.decide(state, RemoveBinding(), NOW) == [removed]
    gone = given(
        bindings.evolve,
        [DesiredStateBindingCreated(artefact_id=ARTEFACT, target=GROUP, priority=0), removed],
    )
    with pytest.raises(NotFound):
        bindings.decide(gone, ChangeBinding(priority=1), NOW)
