"""Config artefacts, their versions and desired-state bindings through the fleet service's
operations over real NATS and Postgres (ADR 0090): create/list/get/delete, versions
immutable and never renumbered, JSON Schema checking, the 256 KiB limit, deletes refused
while in use, If-Match, another organization's ids (404 before 412), the list filters, and
the events on the FLEET stream and in the audit log."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import msgspec
import pytest
from fleet_testkit import Env, fleet_env

from outpost_contracts import audit
from outpost_contracts import fleet as api
from outpost_contracts.errors import (
    Conflict,
    NotFound,
    PreconditionFailed,
    ValidationFailed,
)
from outpost_contracts.query import Cmp, ListQuery
from outpost_kit import ids

pytestmark = pytest.mark.integration

SCHEMA = {
    "type": "object",
    "properties": {"interval": {"type": "integer", "minimum": 1}},
    "required": ["interval"],
}


@pytest.fixture
async def env(postgres_dsn: str, nats_url: str) -> AsyncIterator[Env]:
    async with fleet_env(postgres_dsn, nats_url) as e:
        yield e


async def _artefact(env: Env, org: uuid.UUID, name: str, **kw: Any) -> api.ConfigArtefactView:
    body = api.CreateConfigArtefact(name=name, document=kw.pop("document", {"a": 1}), **kw)
    return await env.call(api.CREATE_CONFIG_ARTEFACT, org, body)  # type: ignore[no-any-return]


async def _publish(
    env: Env, org: uuid.UUID, artefact: uuid.UUID, document: dict[str, Any], **kw: Any
) -> api.ConfigArtefactVersionView:
    body = api.PublishConfigArtefactVersion(id=artefact, document=document, **kw)
    return await env.call(api.PUBLISH_CONFIG_ARTEFACT_VERSION, org, body)  # type: ignore[no-any-return]


async def _bind(
    env: Env, org: uuid.UUID, artefact: uuid.UUID, target: api.TargetBody | None = None, **kw: Any
) -> api.DesiredStateBindingView:
    body = api.CreateDesiredStateBinding(
        artefact_id=artefact,
        target=target or api.TargetBody(type=api.TargetType.ORGANIZATION),
        **kw,
    )
    return await env.call(api.CREATE_DESIRED_STATE_BINDING, org, body)  # type: ignore[no-any-return]


async def _versions(env: Env, org: uuid.UUID, artefact: uuid.UUID, **kw: Any) -> list[int]:
    q = api.ListConfigArtefactVersions(id=artefact, query=ListQuery(**kw))
    page = await env.call(api.LIST_CONFIG_ARTEFACT_VERSIONS, org, q)
    return [v.version for v in page.data]


async def test_artefacts_are_created_listed_and_named_once_per_organization(env: Env) -> None:
    org, other = ids.new_id(), ids.new_id()
    made = await _artefact(env, org, "sampling", document={"interval": 60}, schema=SCHEMA)
    assert (made.version, made.version_count) == (1, 1)
    assert made.document == {"interval": 60} and made.schema == SCHEMA
    got = await env.call(api.GET_CONFIG_ARTEFACT, org, api.GetConfigArtefact(id=made.id))
    assert got == made
    await _artefact(env, org, "leds")
    await _artefact(env, other, "sampling")  # the same name elsewhere is fine
    with pytest.raises(Conflict):
        await _artefact(env, org, "sampling")
    page = await env.call(api.LIST_CONFIG_ARTEFACTS, org, api.ListConfigArtefacts())
    assert [a.name for a in page.data] == ["sampling", "leds"]
    # A list carries no documents (a page of 256 KiB artefacts would not fit a message).
    assert all(a.document is msgspec.UNSET and a.schema is msgspec.UNSET for a in page.data)
    named = ListQuery(filter=Cmp(field="name", op="eq", value="leds"))
    page = await env.call(api.LIST_CONFIG_ARTEFACTS, org, api.ListConfigArtefacts(query=named))
    assert [a.name for a in page.data] == ["leds"]
    with pytest.raises(NotFound):
        await env.call(api.GET_CONFIG_ARTEFACT, other, api.GetConfigArtefact(id=made.id))


async def test_versions_are_immutable_and_never_renumbered(env: Env) -> None:
    org = ids.new_id()
    made = await _artefact(env, org, "cfg", document={"v": 1})
    v2 = await _publish(env, org, made.id, {"v": 2})
    v3 = await _publish(env, org, made.id, {"v": 3})
    assert (v2.version, v3.version, v3.document) == (2, 3, {"v": 3})
    # The same document again publishes nothing: the latest is answered.
    again = await _publish(env, org, made.id, {"v": 3})
    assert again.version == 3 and await _versions(env, org, made.id) == [1, 2, 3]
    first = await env.call(
        api.GET_CONFIG_ARTEFACT_VERSION, org, api.GetConfigArtefactVersion(id=made.id, version=1)
    )
    assert first.document == {"v": 1} and first.size_bytes == len(b'{"v":1}')
    await env.call(
        api.DELETE_CONFIG_ARTEFACT_VERSION,
        org,
        api.DeleteConfigArtefactVersion(id=made.id, version=3),
    )
    # The latest is now 2; the next publication is 4, never 3 again.
    got = await env.call(api.GET_CONFIG_ARTEFACT, org, api.GetConfigArtefact(id=made.id))
    assert (got.version, got.version_count, got.document) == (2, 2, {"v": 2})
    assert (await _publish(env, org, made.id, {"v": 4})).version == 4
    assert await _versions(env, org, made.id) == [1, 2, 4]
    assert await _versions(env, org, made.id, limit=1, after="1") == [2]
    assert await _versions(env, org, made.id, order="DESC", after="4") == [2, 1]
    with pytest.raises(NotFound):
        await env.call(
            api.GET_CONFIG_ARTEFACT_VERSION,
            org,
            api.GetConfigArtefactVersion(id=made.id, version=3),
        )
    for n in (1, 2):
        await env.call(
            api.DELETE_CONFIG_ARTEFACT_VERSION,
            org,
            api.DeleteConfigArtefactVersion(id=made.id, version=n),
        )
    with pytest.raises(Conflict, match="last version"):
        await env.call(
            api.DELETE_CONFIG_ARTEFACT_VERSION,
            org,
            api.DeleteConfigArtefactVersion(id=made.id, version=4),
        )


async def test_documents_are_checked_against_their_schema_and_size(env: Env) -> None:
    org = ids.new_id()
    with pytest.raises(ValidationFailed) as bad:
        await _artefact(env, org, "s", document={"interval": 0}, schema=SCHEMA)
    assert [f.name for f in bad.value.fields] == ["document"]
    assert "/interval" in bad.value.fields[0].message
    made = await _artefact(env, org, "s", document={"interval": 5}, schema=SCHEMA)
    # Absent: the latest schema is kept (and checked); null drops it; an object replaces it.
    with pytest.raises(ValidationFailed):
        await _publish(env, org, made.id, {"other": True})
    dropped = await _publish(env, org, made.id, {"other": True}, schema=None)
    assert dropped.schema is None and dropped.version == 2
    replaced = await _publish(env, org, made.id, {"x": "y"}, schema={"type": "object"})
    assert replaced.schema == {"type": "object"}
    with pytest.raises(ValidationFailed) as bad_schema:
        await _publish(env, org, made.id, {"x": 1}, schema={"type": "nonsense"})
    assert "not a valid JSON Schema" in bad_schema.value.fields[0].message
    big = {"blob": "x" * api.MAX_ARTEFACT_BYTES}
    with pytest.raises(ValidationFailed) as too_big:
        await _publish(env, org, made.id, big)
    assert "larger than" in too_big.value.fields[0].message
    assert await _versions(env, org, made.id) == [1, 2, 3]


async def test_what_a_binding_uses_cannot_be_deleted(env: Env) -> None:
    org = ids.new_id()
    made = await _artefact(env, org, "cfg", document={"v": 1})
    await _publish(env, org, made.id, {"v": 2})
    await _publish(env, org, made.id, {"v": 3})
    pinned = await _bind(env, org, made.id, artefact_version=1)
    latest = await _bind(env, org, made.id, artefact_version="latest", priority=5)
    assert (pinned.artefact_version, latest.artefact_version) == (1, "latest")

    async def delete_version(n: int) -> None:
        cmd = api.DeleteConfigArtefactVersion(id=made.id, version=n)
        await env.call(api.DELETE_CONFIG_ARTEFACT_VERSION, org, cmd)

    with pytest.raises(Conflict) as used:
        await delete_version(1)
    assert used.value.details["usedBy"] == [f"binding {pinned.id}"]
    with pytest.raises(Conflict) as used:
        await delete_version(3)  # the latest, and a binding follows "latest"
    assert used.value.details["usedBy"] == [f"binding {latest.id}"]
    await delete_version(2)  # nobody's
    with pytest.raises(Conflict) as used:
        await env.call(api.DELETE_CONFIG_ARTEFACT, org, api.DeleteConfigArtefact(id=made.id))
    assert sorted(used.value.details["usedBy"]) == sorted(
        [f"binding {pinned.id}", f"binding {latest.id}"]
    )
    for b in (pinned, latest):
        await env.call(
            api.DELETE_DESIRED_STATE_BINDING, org, api.DeleteDesiredStateBinding(id=b.id)
        )
    await env.call(api.DELETE_CONFIG_ARTEFACT, org, api.DeleteConfigArtefact(id=made.id))
    with pytest.raises(NotFound):
        await env.call(api.GET_CONFIG_ARTEFACT, org, api.GetConfigArtefact(id=made.id))
    assert await env.rows(org, "SELECT * FROM config_artefact_versions") == []
    # A deleted artefact can no longer be bound.
    with pytest.raises(NotFound):
        await _bind(env, org, made.id)


async def test_bindings_change_with_if_match_and_are_filtered(env: Env) -> None:
    org = ids.new_id()
    one = await _artefact(env, org, "one")
    two = await _artefact(env, org, "two")
    group, device = env.devices.add(org), env.devices.add(org)
    on_org = await _bind(env, org, one.id)
    on_group = await _bind(env, org, one.id, api.TargetBody(type=api.TargetType.GROUP, id=group))
    on_device = await _bind(
        env, org, two.id, api.TargetBody(type=api.TargetType.DEVICE, id=device), priority=-3
    )
    assert on_group.target == api.Target(type=api.TargetType.GROUP, id=group)
    assert on_group.version == 1

    async def listed(**filters: Any) -> list[uuid.UUID]:
        (name, value), *_ = filters.items()
        q = ListQuery(filter=Cmp(field=name, op="eq", value=value))
        page = await env.call(
            api.LIST_DESIRED_STATE_BINDINGS, org, api.ListDesiredStateBindings(query=q)
        )
        return [b.id for b in page.data]

    assert await listed(artefactId=str(one.id)) == [on_org.id, on_group.id]
    assert await listed(**{"target.type": "DEVICE"}) == [on_device.id]
    assert await listed(**{"target.id": str(group)}) == [on_group.id]
    assert await listed(targetType="ORGANIZATION") == [on_org.id]
    assert await listed(artefactVersion=None) == [on_org.id, on_group.id, on_device.id]

    async def update(patch: api.DesiredStateBindingPatch, expected: int | None) -> Any:
        cmd = api.UpdateDesiredStateBinding(id=on_group.id, patch=patch, expected_version=expected)
        return await env.call(api.UPDATE_DESIRED_STATE_BINDING, org, cmd)

    changed = await update(api.DesiredStateBindingPatch(priority=7, artefact_version=1), 1)
    assert (changed.priority, changed.artefact_version, changed.version) == (7, 1, 2)
    with pytest.raises(PreconditionFailed):
        await update(api.DesiredStateBindingPatch(priority=8), 1)
    with pytest.raises(ValidationFailed):
        await update(api.DesiredStateBindingPatch(artefact_version=9), None)
    back = await update(api.DesiredStateBindingPatch(artefact_version="latest"), 2)
    assert back.artefact_version == "latest" and back.priority == 7
    same = await update(api.DesiredStateBindingPatch(priority=7), None)
    assert same.version == 3  # nothing changed: no event
    with pytest.raises(PreconditionFailed):
        await env.call(
            api.DELETE_DESIRED_STATE_BINDING,
            org,
            api.DeleteDesiredStateBinding(id=on_group.id, expected_version=1),
        )
    await env.call(
        api.DELETE_DESIRED_STATE_BINDING,
        org,
        api.DeleteDesiredStateBinding(id=on_group.id, expected_version=3),
    )
    with pytest.raises(NotFound):
        await env.call(
            api.GET_DESIRED_STATE_BINDING, org, api.GetDesiredStateBinding(id=on_group.id)
        )


async def test_an_artefacts_if_match_names_its_latest_version(env: Env) -> None:
    org = ids.new_id()
    made = await _artefact(env, org, "cfg", document={"v": 1})
    with pytest.raises(PreconditionFailed):
        await _publish(env, org, made.id, {"v": 2}, expected_version=2)
    assert (await _publish(env, org, made.id, {"v": 2}, expected_version=1)).version == 2
    with pytest.raises(PreconditionFailed):
        await env.call(
            api.DELETE_CONFIG_ARTEFACT,
            org,
            api.DeleteConfigArtefact(id=made.id, expected_version=1),
        )
    await env.call(
        api.DELETE_CONFIG_ARTEFACT, org, api.DeleteConfigArtefact(id=made.id, expected_version=2)
    )


async def test_targets_and_artefacts_of_other_organizations_are_not_found(env: Env) -> None:
    org, other = ids.new_id(), ids.new_id()
    mine = await _artefact(env, org, "mine")
    theirs = await _artefact(env, other, "theirs")
    their_group = env.devices.add(other)
    # Another organization's artefact cannot be bound: 404, as if it did not exist.
    with pytest.raises(NotFound, match="config artefact"):
        await _bind(env, org, theirs.id)
    with pytest.raises(NotFound, match="group"):
        await _bind(env, org, mine.id, api.TargetBody(type=api.TargetType.GROUP, id=their_group))
    with pytest.raises(NotFound, match="site"):
        await _bind(env, org, mine.id, api.TargetBody(type=api.TargetType.SITE, id=ids.new_id()))
    with pytest.raises(ValidationFailed):
        await _bind(env, org, mine.id, api.TargetBody(type=api.TargetType.DEVICE))
    with pytest.raises(ValidationFailed):
        await _bind(
            env, org, mine.id, api.TargetBody(type=api.TargetType.ORGANIZATION, id=ids.new_id())
        )
    with pytest.raises(ValidationFailed):
        await _bind(env, org, mine.id, artefact_version=2)  # no such version
    binding = await _bind(
        env, other, theirs.id, api.TargetBody(type=api.TargetType.GROUP, id=their_group)
    )
    # 404 comes before If-Match for what the caller cannot see.
    for op, body in (
        (api.GET_DESIRED_STATE_BINDING, api.GetDesiredStateBinding(id=binding.id)),
        (
            api.UPDATE_DESIRED_STATE_BINDING,
            api.UpdateDesiredStateBinding(
                id=binding.id, patch=api.DesiredStateBindingPatch(priority=1), expected_version=9
            ),
        ),
        (
            api.DELETE_DESIRED_STATE_BINDING,
            api.DeleteDesiredStateBinding(id=binding.id, expected_version=9),
        ),
        (api.DELETE_CONFIG_ARTEFACT, api.DeleteConfigArtefact(id=theirs.id, expected_version=9)),
        (
            api.PUBLISH_CONFIG_ARTEFACT_VERSION,
            api.PublishConfigArtefactVersion(id=theirs.id, document={}, expected_version=9),
        ),
        (
            api.DELETE_CONFIG_ARTEFACT_VERSION,
            api.DeleteConfigArtefactVersion(id=theirs.id, version=1),
        ),
        (
            api.GET_CONFIG_ARTEFACT_VERSION,
            api.GetConfigArtefactVersion(id=theirs.id, version=1),
        ),
        (api.LIST_CONFIG_ARTEFACT_VERSIONS, api.ListConfigArtefactVersions(id=theirs.id)),
    ):
        with pytest.raises(NotFound):
            await env.call(op, org, body)
    page = await env.call(api.LIST_DESIRED_STATE_BINDINGS, org, api.ListDesiredStateBindings())
    assert page.data == []


async def test_changes_reach_the_fleet_stream_and_the_audit_log(env: Env) -> None:
    org = ids.new_id()
    sub = await env.js.subscribe(f"outpost.evt.fleet.{org}.>", ordered_consumer=True)
    made = await _artefact(env, org, "cfg")
    await _bind(env, org, made.id)
    seen = []
    for _ in range(3):
        msg = await sub.next_msg(timeout=10)
        seen.append(msg.subject.split(".")[-2])
    await sub.unsubscribe()
    assert seen == [
        "ConfigArtefactCreated",
        "ConfigArtefactVersionPublished",
        "DesiredStateBindingCreated",
    ]
    page = await env.call(audit.list_audit_log("fleet"), org, audit.ListAuditLog())
    assert {e.type for e in page.data} == {
        "fleet.ConfigArtefactCreated.v1",
        "fleet.ConfigArtefactVersionPublished.v1",
        "fleet.DesiredStateBindingCreated.v1",
    }


async def test_device_profiles_are_targets_and_uses_of_an_artefact(env: Env) -> None:
    org, other = ids.new_id(), ids.new_id()
    made = await _artefact(env, org, "defaults", document={"v": 1})
    await _publish(env, org, made.id, {"v": 2})
    profile = await env.call(
        api.CREATE_DEVICE_PROFILE,
        org,
        api.CreateDeviceProfile(name="TH-1", config_artefact_id=made.id),
    )
    theirs = await env.call(api.CREATE_DEVICE_PROFILE, other, api.CreateDeviceProfile(name="X"))
    bound = await _bind(
        env, org, made.id, api.TargetBody(type=api.TargetType.PROFILE, id=profile.id)
    )
    assert bound.target.id == profile.id
    for unknown in (theirs.id, ids.new_id()):
        with pytest.raises(NotFound, match="profile"):
            await _bind(env, org, made.id, api.TargetBody(type=api.TargetType.PROFILE, id=unknown))
    await env.call(
        api.DELETE_DESIRED_STATE_BINDING, org, api.DeleteDesiredStateBinding(id=bound.id)
    )
    # The profile names the artefact: its latest version and the artefact are in use.
    with pytest.raises(Conflict) as used:
        await env.call(
            api.DELETE_CONFIG_ARTEFACT_VERSION,
            org,
            api.DeleteConfigArtefactVersion(id=made.id, version=2),
        )
    assert used.value.details["usedBy"] == [f"device profile {profile.id}"]
    await env.call(
        api.DELETE_CONFIG_ARTEFACT_VERSION,
        org,
        api.DeleteConfigArtefactVersion(id=made.id, version=1),
    )
    with pytest.raises(Conflict) as used:
        await env.call(api.DELETE_CONFIG_ARTEFACT, org, api.DeleteConfigArtefact(id=made.id))
    assert used.value.details["usedBy"] == [f"device profile {profile.id}"]
