"""Use cases of config artefacts (and their versions) and desired-state bindings, and their
handler table (merged into fleet's in ``app/handlers.py``).

Every change goes load → decide → append through the kit's ``Aggregate``: the events go to
the FLEET stream through the outbox and into the audit log, the read models are written in
the same transaction (``adapters/config_store.py``). What the deciders cannot see is read
here and passed in: the JSON Schema's verdict on a document, what uses a version, the
artefact's live versions when a binding is made, whether a binding's target exists. Another
organization's artefact or binding is not found (404) before any ``If-Match`` check."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any
from uuid import UUID

import msgspec

from outpost_contracts import fleet as api
from outpost_contracts.base import Empty
from outpost_contracts.envelope import PLATFORM_ORG_ID, RequestContext
from outpost_contracts.errors import (
    Conflict,
    NotFound,
    PreconditionFailed,
    ValidationFailed,
    validation_error,
)
from outpost_contracts.query import Page
from outpost_contracts.rpc import Operation
from outpost_fleet.app.ports import ConfigTx
from outpost_fleet.domain import artefacts, bindings
from outpost_kit import aggregate, ids

if TYPE_CHECKING:
    from outpost_fleet.app.handlers import Deps

ARTEFACTS = aggregate.Aggregate(artefacts.STREAM_TYPE, artefacts.decide, artefacts.evolve)
BINDINGS = aggregate.Aggregate(bindings.STREAM_TYPE, bindings.decide, bindings.evolve)


def _tenant(ctx: RequestContext) -> None:
    if ctx.org_id == PLATFORM_ORG_ID:
        raise ValidationFailed(
            "configuration belongs to an organization: name it with X-Organization"
        )


async def _artefact(tx: ConfigTx, artefact_id: UUID) -> artefacts.ConfigArtefact:
    state, _version = await ARTEFACTS.load(tx, artefact_id)
    if state is None or state.deleted:
        raise NotFound("no such config artefact")
    return state  # type: ignore[no-any-return]


def _latest_matches(state: artefacts.ConfigArtefact, expected: int | None) -> None:
    """``If-Match`` on an artefact names its latest version (its ETag)."""
    latest = state.latest
    actual = latest.version if latest is not None else 0
    if expected is not None and expected != actual:
        raise PreconditionFailed(
            "the config artefact has changed since that version",
            details={"expectedVersion": expected, "actualVersion": actual},
        )


def _taken(name: str) -> Conflict:
    return Conflict(f"a config artefact named '{name}' already exists")


# --- config artefacts -------------------------------------------------------------------


async def create_artefact(
    deps: Deps, ctx: RequestContext, cmd: api.CreateConfigArtefact
) -> api.ConfigArtefactView:
    _tenant(ctx)
    command = artefacts.CreateArtefact(
        name=cmd.name,
        document=cmd.document,
        schema=cmd.schema,
        schema_problems=deps.schema_problems(cmd.document, cmd.schema),
    )
    new_id = ids.new_id()
    async with deps.config(ctx.org_id) as tx:
        if await tx.name_taken(cmd.name):
            raise _taken(cmd.name)
        try:
            await ARTEFACTS.execute(tx, ctx, stream_id=new_id, command=command, org_id=ctx.org_id)
        except aggregate.Taken as exc:  # a concurrent create took the name
            raise _taken(cmd.name) from exc
        view = await tx.artefact(new_id)
        await tx.commit()
    assert view is not None
    return view


async def get_artefact(
    deps: Deps, ctx: RequestContext, q: api.GetConfigArtefact
) -> api.ConfigArtefactView:
    async with deps.config(ctx.org_id) as tx:
        view = await tx.artefact(q.id)
    if view is None:
        raise NotFound("no such config artefact")
    return view


async def list_artefacts(
    deps: Deps, ctx: RequestContext, q: api.ListConfigArtefacts
) -> Page[api.ConfigArtefactView]:
    async with deps.config(ctx.org_id) as tx:
        return await tx.artefacts(q.query)


async def delete_artefact(deps: Deps, ctx: RequestContext, cmd: api.DeleteConfigArtefact) -> Empty:
    """Refused (409, ``usedBy``) while a binding uses any version. The artefact's row is
    locked first so no binding starts using it meanwhile."""
    async with deps.config(ctx.org_id) as tx:
        if not await tx.lock_artefact(cmd.id, exclusive=True):
            raise NotFound("no such config artefact")
        state = await _artefact(tx, cmd.id)
        _latest_matches(state, cmd.expected_version)
        used_by = await tx.uses(cmd.id, None, latest=True)
        await ARTEFACTS.execute(
            tx,
            ctx,
            stream_id=cmd.id,
            command=artefacts.DeleteArtefact(used_by=tuple(used_by)),
            org_id=ctx.org_id,
        )
        await tx.commit()
    return Empty()


# --- versions ---------------------------------------------------------------------------


async def publish_version(
    deps: Deps, ctx: RequestContext, cmd: api.PublishConfigArtefactVersion
) -> api.ConfigArtefactVersionView:
    """A new version (the latest one answered when the document and schema are the latest
    version's: nothing is published)."""
    if cmd.schema is msgspec.UNSET:
        command = artefacts.PublishVersion(document=cmd.document)
    else:
        command = artefacts.PublishVersion(
            document=cmd.document, schema=cmd.schema, replace_schema=True
        )
    async with deps.config(ctx.org_id) as tx:
        state = await _artefact(tx, cmd.id)
        _latest_matches(state, cmd.expected_version)
        schema = artefacts.schema_for(state, command)
        command = msgspec.structs.replace(
            command, schema_problems=deps.schema_problems(cmd.document, schema)
        )
        new_state, _ = await ARTEFACTS.execute(
            tx, ctx, stream_id=cmd.id, command=command, org_id=ctx.org_id
        )
        latest = new_state.latest
        assert latest is not None
        view = await tx.version(cmd.id, latest.version)
        await tx.commit()
    assert view is not None
    return view


async def list_versions(
    deps: Deps, ctx: RequestContext, q: api.ListConfigArtefactVersions
) -> Page[api.ConfigArtefactVersionView]:
    """The live versions, oldest first; ``after`` is a version number."""
    after: int | None = None
    if q.query.after is not None:
        text = q.query.after
        if not (text.isascii() and text.isdigit() and int(text) <= api.MAX_VERSION):
            raise validation_error("after", "must be a version number")
        after = int(text)
    async with deps.config(ctx.org_id) as tx:
        await _artefact(tx, q.id)
        query = msgspec.structs.replace(q.query, after=None)
        page = await tx.versions(q.id, query, after)
    return msgspec.structs.replace(page, after=q.query.after)


async def get_version(
    deps: Deps, ctx: RequestContext, q: api.GetConfigArtefactVersion
) -> api.ConfigArtefactVersionView:
    async with deps.config(ctx.org_id) as tx:
        view = await tx.version(q.id, q.version)
        if view is None:
            await _artefact(tx, q.id)  # 404 for the artefact first
    if view is None:
        raise NotFound(f"no version {q.version} of this config artefact")
    return view


async def delete_version(
    deps: Deps, ctx: RequestContext, cmd: api.DeleteConfigArtefactVersion
) -> Empty:
    """Refused (409, ``usedBy``) while a binding pins the version, or follows "latest" and
    it is the latest; and for the last live version (delete the artefact instead)."""
    async with deps.config(ctx.org_id) as tx:
        if not await tx.lock_artefact(cmd.id, exclusive=True):
            raise NotFound("no such config artefact")
        state = await _artefact(tx, cmd.id)
        latest = state.latest
        is_latest = latest is not None and latest.version == cmd.version
        used_by = await tx.uses(cmd.id, cmd.version, latest=is_latest)
        await ARTEFACTS.execute(
            tx,
            ctx,
            stream_id=cmd.id,
            command=artefacts.DeleteVersion(version=cmd.version, used_by=tuple(used_by)),
            org_id=ctx.org_id,
        )
        await tx.commit()
    return Empty()


# --- desired-state bindings --------------------------------------------------------------


def _bound(version: int | str) -> int | None:
    return None if version == api.LATEST else int(version)


async def _live_versions(tx: ConfigTx, artefact_id: UUID) -> frozenset[int]:
    """The artefact's live versions, its row share-locked (none: no such artefact)."""
    if not await tx.lock_artefact(artefact_id, exclusive=False):
        return frozenset()
    state, _ = await ARTEFACTS.load(tx, artefact_id)
    if state is None or state.deleted:
        return frozenset()
    return frozenset(state.versions)


async def create_binding(
    deps: Deps, ctx: RequestContext, cmd: api.CreateDesiredStateBinding
) -> api.DesiredStateBindingView:
    _tenant(ctx)
    target = api.Target(type=cmd.target.type, id=cmd.target.id)
    # The id rule first (the decider says it), so the devices service is asked only of ids.
    well_formed = (target.type is api.TargetType.ORGANIZATION) == (target.id is None)
    exists = await deps.targets.exists(ctx, target) if well_formed else True
    new_id = ids.new_id()
    async with deps.config(ctx.org_id) as tx:
        if well_formed and target.type is api.TargetType.PROFILE:
            assert target.id is not None
            exists = await tx.profile_exists(target.id)
        command = bindings.CreateBinding(
            artefact_id=cmd.artefact_id,
            target=target,
            priority=cmd.priority,
            artefact_version=_bound(cmd.artefact_version),
            artefact_versions=await _live_versions(tx, cmd.artefact_id),
            target_exists=exists,
        )
        await BINDINGS.execute(tx, ctx, stream_id=new_id, command=command, org_id=ctx.org_id)
        view = await tx.binding(new_id)
        await tx.commit()
    assert view is not None
    return view


async def get_binding(
    deps: Deps, ctx: RequestContext, q: api.GetDesiredStateBinding
) -> api.DesiredStateBindingView:
    async with deps.config(ctx.org_id) as tx:
        view = await tx.binding(q.id)
    if view is None:
        raise NotFound("no such desired-state binding")
    return view


async def list_bindings(
    deps: Deps, ctx: RequestContext, q: api.ListDesiredStateBindings
) -> Page[api.DesiredStateBindingView]:
    async with deps.config(ctx.org_id) as tx:
        return await tx.bindings(q.query)


async def _binding(tx: ConfigTx, binding_id: UUID) -> bindings.Binding:
    state, _ = await BINDINGS.load(tx, binding_id)
    if state is None or state.deleted:
        raise NotFound("no such desired-state binding")
    return state  # type: ignore[no-any-return]


async def update_binding(
    deps: Deps, ctx: RequestContext, cmd: api.UpdateDesiredStateBinding
) -> api.DesiredStateBindingView:
    patch = cmd.patch
    async with deps.config(ctx.org_id) as tx:
        state = await _binding(tx, cmd.id)
        version: int | msgspec.UnsetType | None = msgspec.UNSET
        if not isinstance(patch.artefact_version, msgspec.UnsetType):
            version = _bound(patch.artefact_version)
        command = bindings.ChangeBinding(
            priority=patch.priority,
            artefact_version=version,
            artefact_versions=await _live_versions(tx, state.artefact_id),
        )
        await BINDINGS.execute(
            tx,
            ctx,
            stream_id=cmd.id,
            command=command,
            org_id=ctx.org_id,
            expected_version=cmd.expected_version,
        )
        view = await tx.binding(cmd.id)
        await tx.commit()
    assert view is not None
    return view


async def delete_binding(
    deps: Deps, ctx: RequestContext, cmd: api.DeleteDesiredStateBinding
) -> Empty:
    async with deps.config(ctx.org_id) as tx:
        await _binding(tx, cmd.id)
        await BINDINGS.execute(
            tx,
            ctx,
            stream_id=cmd.id,
            command=bindings.RemoveBinding(),
            org_id=ctx.org_id,
            expected_version=cmd.expected_version,
        )
        await tx.commit()
    return Empty()


HANDLERS: dict[Operation[Any, Any], Callable[..., Awaitable[Any]]] = {
    api.CREATE_CONFIG_ARTEFACT: create_artefact,
    api.LIST_CONFIG_ARTEFACTS: list_artefacts,
    api.GET_CONFIG_ARTEFACT: get_artefact,
    api.DELETE_CONFIG_ARTEFACT: delete_artefact,
    api.PUBLISH_CONFIG_ARTEFACT_VERSION: publish_version,
    api.LIST_CONFIG_ARTEFACT_VERSIONS: list_versions,
    api.GET_CONFIG_ARTEFACT_VERSION: get_version,
    api.DELETE_CONFIG_ARTEFACT_VERSION: delete_version,
    api.CREATE_DESIRED_STATE_BINDING: create_binding,
    api.LIST_DESIRED_STATE_BINDINGS: list_bindings,
    api.GET_DESIRED_STATE_BINDING: get_binding,
    api.UPDATE_DESIRED_STATE_BINDING: update_binding,
    api.DELETE_DESIRED_STATE_BINDING: delete_binding,
}
