"""Use cases of packs (ADR 0092): author a pack from the organization's items, export it as a
self-contained document, import a document into another organization (first install,
upgrade, or nothing when that version is installed), uninstall; and their handler table.

An import is one transaction: the plan (``domain.packs.plan_import``) against what the
previous install holds and what users made of it since (the digest of each resource now),
carried out step by step through the same use cases a user's requests go through (so every
rule, event and audit entry is the usual one), then recorded on the pack's aggregate.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any
from uuid import UUID

import msgspec

from outpost_contracts import fleet as api
from outpost_contracts.base import Empty
from outpost_contracts.envelope import RequestContext
from outpost_contracts.errors import Conflict, NotFound, validation_error
from outpost_contracts.query import Page
from outpost_contracts.rpc import Operation
from outpost_fleet.app import profiles as profile_app
from outpost_fleet.app.profile_ports import ProfilesTx
from outpost_fleet.app.profiles import ARTEFACTS, DEVICE_PROFILES, SENSOR_PROFILES, ProfileDeps
from outpost_fleet.domain import artefacts, pack_content
from outpost_fleet.domain import packs as domain
from outpost_fleet.domain.packs import Action, ItemId, ItemKind
from outpost_kit import aggregate, ids

PACKS = aggregate.Aggregate(domain.PACK, domain.decide_pack, domain.evolve_pack)
# An upgrade sets every field of a sensor profile (null clears what the new version lacks).
_SENSOR_PATCH_FIELDS = [f.name for f in msgspec.structs.fields(api.SensorProfilePatch)]

_KINDS = {
    ItemKind.SENSOR_PROFILE: (SENSOR_PROFILES, "sensor profile"),
    ItemKind.DEVICE_PROFILE: (DEVICE_PROFILES, "device profile"),
    ItemKind.CONFIG_ARTEFACT: (ARTEFACTS, "config artefact"),
}


def _taken(name: str) -> Conflict:
    return Conflict(f"a pack named '{name}' already exists")


async def _state(uow: ProfilesTx, kind: ItemKind, resource_id: UUID) -> Any:
    """The resource's state, or None when there is none (deleted, another tenant's)."""
    if kind not in _KINDS:
        return None
    state, _version = await _KINDS[kind][0].load(uow, resource_id)
    return None if state is None or state.deleted else state


def _content(kind: ItemKind, state: Any, key_of: Callable[[UUID], str]) -> dict[str, Any]:
    if kind is ItemKind.SENSOR_PROFILE:
        return pack_content.sensor_profile_content(state)
    if kind is ItemKind.DEVICE_PROFILE:
        return pack_content.device_profile_content(state, key_of)
    return pack_content.artefact_content(state)


# --- authoring ----------------------------------------------------------------------------


async def _require_items(uow: ProfilesTx, refs: Sequence[api.PackItemRef]) -> None:
    for i, ref in enumerate(refs):
        if await _state(uow, ItemKind(ref.kind), ref.id) is None:
            raise validation_error(f"items[{i}].id", f"no such {ref.kind.lower()} here")


async def create_pack(deps: ProfileDeps, ctx: RequestContext, cmd: api.CreatePack) -> api.PackView:
    new_id = ids.new_id()
    async with deps.uow(ctx.org_id) as uow:
        if await uow.pack_named(cmd.name) is not None:
            raise _taken(cmd.name)
        await _require_items(uow, cmd.items)
        try:
            await PACKS.execute(uow, ctx, stream_id=new_id, command=cmd, org_id=ctx.org_id)
        except aggregate.Taken as exc:
            raise _taken(cmd.name) from exc
        view = await uow.pack(new_id)
        await uow.commit()
    assert view is not None
    return view


async def update_pack(deps: ProfileDeps, ctx: RequestContext, cmd: api.UpdatePack) -> api.PackView:
    """An authored pack's next version (``version`` must grow), other items or name."""
    async with deps.uow(ctx.org_id) as uow:
        await profile_app.live(uow, PACKS, cmd.id, "pack")
        name = cmd.patch.name
        if isinstance(name, str) and (await uow.pack_named(name)) not in (None, cmd.id):
            raise _taken(name)
        if isinstance(cmd.patch.items, list):
            await _require_items(uow, cmd.patch.items)
        try:
            await PACKS.execute(
                uow,
                ctx,
                stream_id=cmd.id,
                command=cmd.patch,
                org_id=ctx.org_id,
                expected_version=cmd.expected_version,
            )
        except aggregate.Taken as exc:
            raise _taken(str(name)) from exc
        view = await uow.pack(cmd.id)
        await uow.commit()
    assert view is not None
    return view


async def get_pack(deps: ProfileDeps, ctx: RequestContext, q: api.GetPack) -> api.PackView:
    async with deps.uow(ctx.org_id) as uow:
        view = await uow.pack(q.id)
    if view is None:
        raise NotFound("no such pack")
    return view


async def list_packs(
    deps: ProfileDeps, ctx: RequestContext, q: api.ListPacks
) -> Page[api.PackView]:
    async with deps.uow(ctx.org_id) as uow:
        return await uow.packs(q.query)


# --- export -------------------------------------------------------------------------------


async def _authored_items(uow: ProfilesTx, pack: domain.Pack) -> list[api.PackDocumentItem]:
    """The pack's items as they are now, each device profile with the sensor profiles and
    the config artefact it names; keys are the items' ids here."""
    found: dict[ItemId, dict[str, Any]] = {}

    async def add(kind: ItemKind, resource_id: UUID) -> Any:
        state = await _state(uow, kind, resource_id)
        if state is None:
            raise Conflict(
                f"the pack's {kind.lower().replace('_', ' ')} {resource_id} no longer exists:"
                " change the pack's items",
                details={"kind": kind.value, "id": str(resource_id)},
            )
        found[(kind, str(resource_id))] = _content(kind, state, str)
        return state

    for ref in pack.refs:
        kind = ItemKind(ref.kind)
        if kind is ItemKind.DEVICE_PROFILE:
            profile = await _state(uow, kind, ref.id)
            for sensor in profile.sensors if profile is not None else ():
                await add(ItemKind.SENSOR_PROFILE, sensor.sensor_profile_id)
            if profile is not None and profile.config_artefact_id is not None:
                await add(ItemKind.CONFIG_ARTEFACT, profile.config_artefact_id)
        await add(kind, ref.id)
    ordered = sorted(found.items(), key=lambda kv: (domain.KIND_ORDER[kv[0][0]], kv[0][1]))
    return [
        api.PackDocumentItem(kind=api.PackItemKind(kind), key=key, content=content)
        for (kind, key), content in ordered
    ]


async def export_pack(
    deps: ProfileDeps, ctx: RequestContext, q: api.ExportPack
) -> api.PackDocument:
    """An authored pack: a document of its items as they are now. An imported one: the
    document it was installed from."""
    async with deps.uow(ctx.org_id) as uow:
        pack: domain.Pack = await profile_app.live(uow, PACKS, q.id, "pack")
        if pack.origin is api.PackOrigin.IMPORTED:
            return msgspec.convert(pack.document, api.PackDocument)
        items = await _authored_items(uow, pack)
    return api.PackDocument(
        name=pack.name, version=pack.pack_version, items=items, description=pack.description
    )


# --- import and uninstall -----------------------------------------------------------------


async def _current(uow: ProfilesTx, pack: domain.Pack) -> dict[UUID, str | None]:
    """The digest of each resource the install holds, as it is now (absent: deleted)."""
    keys = {item.resource_id: item.key for item in pack.installed}

    def key_of(resource_id: UUID) -> str:
        return keys.get(resource_id, str(resource_id))

    current: dict[UUID, str | None] = {}
    for item in pack.installed:
        kind = ItemKind(item.kind)
        state = await _state(uow, kind, item.resource_id)
        if state is not None:
            current[item.resource_id] = domain.digest(_content(kind, state, key_of))
    return current


def _normalized(document: api.PackDocument) -> tuple[api.PackDocument, dict[ItemId, Any]]:
    """Each item's content in its canonical form, decoded; a reference to an item the pack
    lacks is refused."""
    decoded: dict[ItemId, Any] = {}
    for i, item in enumerate(document.items):
        kind = ItemKind(item.kind)
        decoded[(kind, item.key)] = pack_content.decode(
            kind, item.content, f"document.items[{i}].content"
        )
    for i, item in enumerate(document.items):
        content = decoded[(ItemKind(item.kind), item.key)]
        if isinstance(content, pack_content.DeviceProfileContent):
            for kind, key, field in pack_content.references(content):
                if (kind, key) not in decoded:
                    raise validation_error(
                        f"document.items[{i}].content.{field}",
                        f"no {kind.lower().replace('_', ' ')} with key '{key}' in the pack",
                    )
    items = [
        msgspec.structs.replace(
            item, content=pack_content.encode(decoded[(ItemKind(item.kind), item.key)])
        )
        for item in document.items
    ]
    return msgspec.structs.replace(document, items=items), decoded


async def _create(
    deps: ProfileDeps,
    uow: ProfilesTx,
    ctx: RequestContext,
    kind: ItemKind,
    content: Any,
    new_id: UUID,
    holds: dict[ItemId, UUID],
) -> None:
    if kind is ItemKind.SENSOR_PROFILE:
        await SENSOR_PROFILES.execute(
            uow, ctx, stream_id=new_id, command=content, org_id=ctx.org_id
        )
    elif kind is ItemKind.DEVICE_PROFILE:
        spec = pack_content.device_profile_spec(content, holds)
        await profile_app.add_device_profile(uow, ctx, new_id, spec)
    else:
        command = artefacts.CreateArtefact(
            name=content.name,
            document=content.document,
            schema=content.schema,
            schema_problems=deps.schema_problems(content.document, content.schema),
        )
        await ARTEFACTS.execute(uow, ctx, stream_id=new_id, command=command, org_id=ctx.org_id)


async def _upgrade(
    deps: ProfileDeps,
    uow: ProfilesTx,
    ctx: RequestContext,
    kind: ItemKind,
    content: Any,
    resource_id: UUID,
    holds: dict[ItemId, UUID],
) -> None:
    if kind is ItemKind.SENSOR_PROFILE:
        fields = {f: getattr(content, f) for f in _SENSOR_PATCH_FIELDS}
        await profile_app.change_sensor_profile(
            uow, ctx, resource_id, api.SensorProfilePatch(**fields)
        )
    elif kind is ItemKind.DEVICE_PROFILE:
        spec = pack_content.device_profile_spec(content, holds)
        fields = {f.name: getattr(spec, f.name) for f in msgspec.structs.fields(spec)}
        await profile_app.change_device_profile(
            uow, ctx, resource_id, api.DeviceProfilePatch(**fields)
        )
    else:
        command = artefacts.PublishVersion(
            document=content.document,
            schema=content.schema,
            replace_schema=True,
            schema_problems=deps.schema_problems(content.document, content.schema),
        )
        await ARTEFACTS.execute(uow, ctx, stream_id=resource_id, command=command, org_id=ctx.org_id)


async def _remove(uow: ProfilesTx, ctx: RequestContext, kind: ItemKind, resource_id: UUID) -> None:
    """Refused (409) while something outside what is removed uses it."""
    if kind is ItemKind.SENSOR_PROFILE:
        await profile_app.remove_sensor_profile(uow, ctx, resource_id)
    elif kind is ItemKind.DEVICE_PROFILE:
        await profile_app.remove_device_profile(uow, ctx, resource_id)
    else:
        command = artefacts.DeleteArtefact(used_by=await uow.artefact_uses(resource_id))
        await ARTEFACTS.execute(uow, ctx, stream_id=resource_id, command=command, org_id=ctx.org_id)


def _step(step: domain.Step) -> api.PackStepView:
    return api.PackStepView(
        action=step.action.value,
        kind=api.PackItemKind(step.kind),
        key=step.key,
        resource_id=step.resource_id,
    )


async def import_pack(
    deps: ProfileDeps, ctx: RequestContext, cmd: api.ImportPack
) -> api.PackImportView:
    """Install a pack document: the first time, everything; the installed version again,
    nothing (UNCHANGED, no event); a newer version, what users left as installed, leaving
    and reporting what they changed (conflicts). An older version is refused (409)."""
    document, decoded = _normalized(cmd.document)
    planned = domain.document_of(document)
    async with deps.uow(ctx.org_id) as uow:
        pack_id = await uow.pack_named(document.name)
        pack: domain.Pack | None = None
        if pack_id is not None:
            pack, _version = await PACKS.load(uow, pack_id)
            if pack is not None and pack.origin is api.PackOrigin.AUTHORED:
                raise Conflict(f"this organization authored the pack '{document.name}'")
        previous = None if pack is None else domain.install_of(pack, await _current(uow, pack))
        plan = domain.plan_import(planned, previous)
        if previous is not None and previous.version == planned.version:
            view = await uow.pack(pack_id) if pack_id is not None else None
            assert view is not None
            return api.PackImportView(
                outcome="UNCHANGED", pack=view, steps=[_step(s) for s in plan.steps]
            )
        holds: dict[ItemId, UUID] = (
            {}
            if previous is None
            else {item_id: item.resource_id for item_id, item in previous.items.items()}
        )
        created: dict[ItemId, UUID] = {}
        steps: list[domain.Step] = []
        for step in plan.steps:
            item_id = (step.kind, step.key)
            if step.action is Action.CREATE:
                holds[item_id] = created[item_id] = ids.new_id()
                await _create(deps, uow, ctx, step.kind, decoded[item_id], holds[item_id], holds)
                step = msgspec.structs.replace(step, resource_id=holds[item_id])
            elif step.action is Action.UPGRADE:
                assert step.resource_id is not None
                await _upgrade(deps, uow, ctx, step.kind, decoded[item_id], step.resource_id, holds)
            elif step.action is Action.REMOVE:
                assert step.resource_id is not None
                await _remove(uow, ctx, step.kind, step.resource_id)
            steps.append(step)
        install = domain.installed(planned, plan, previous, created)
        conflicts = tuple(s.key for s in plan.conflicts)
        pack_id = pack_id or ids.new_id()
        record = domain.RecordInstall(document=document, install=install, conflicts=conflicts)
        try:
            await PACKS.execute(uow, ctx, stream_id=pack_id, command=record, org_id=ctx.org_id)
        except aggregate.Taken as exc:  # a concurrent first import of the same pack
            raise Conflict(f"the pack '{document.name}' is being imported: try again") from exc
        view = await uow.pack(pack_id)
        await uow.commit()
    assert view is not None
    return api.PackImportView(
        outcome="INSTALLED" if previous is None else "UPGRADED",
        pack=view,
        steps=[_step(s) for s in steps],
        conflicts=[_step(s) for s in plan.conflicts],
    )


async def delete_pack(deps: ProfileDeps, ctx: RequestContext, cmd: api.DeletePack) -> Empty:
    """An authored pack goes and its items stay. An imported pack is uninstalled: what the
    install created and still exists is removed, device profiles first (refused with 409
    while a device has one, or something outside the pack uses an item)."""
    async with deps.uow(ctx.org_id) as uow:
        pack: domain.Pack = await profile_app.live(uow, PACKS, cmd.id, "pack")
        removed: list[UUID] = []
        if pack.origin is api.PackOrigin.IMPORTED:
            plan = domain.plan_uninstall(domain.install_of(pack, await _current(uow, pack)))
            for step in plan.steps:
                assert step.resource_id is not None
                await _remove(uow, ctx, step.kind, step.resource_id)
                removed.append(step.resource_id)
        await PACKS.execute(
            uow,
            ctx,
            stream_id=cmd.id,
            command=domain.DeletePack(removed=tuple(removed)),
            org_id=ctx.org_id,
            expected_version=cmd.expected_version,
        )
        await uow.commit()
    return Empty()


Handler = Callable[[ProfileDeps, RequestContext, Any], Awaitable[Any]]

HANDLERS: dict[Operation[Any, Any], Handler] = {
    api.CREATE_PACK: create_pack,
    api.LIST_PACKS: list_packs,
    api.GET_PACK: get_pack,
    api.UPDATE_PACK: update_pack,
    api.DELETE_PACK: delete_pack,
    api.EXPORT_PACK: export_pack,
    api.IMPORT_PACK: import_pack,
}
