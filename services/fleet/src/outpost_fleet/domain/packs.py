"""Packs: versioned, portable bundles of sensor profiles, device profiles, rule templates and
config artefacts, and the pure planner behind import, upgrade and uninstall (ADR 0088).

A pack document names itself (``name``), its version (``MAJOR.MINOR.PATCH``) and its items,
each with a kind, a key unique within the pack for that kind, and its content. An install is
recorded per organization as what the pack created: per item, the resource id, the digest of
the content installed, and the digest of that resource now (None once a user deleted it).
A user changed an item when the two digests differ.

Planning an import against the previous install:

- no previous install: every item is CREATE;
- the same version: nothing to do (every item UNCHANGED), provided the document is the one
  installed (a version is immutable: the same version with other content is refused);
- an older version: refused (no downgrade; uninstall first);
- a newer version, per item: new in the pack -> CREATE; content equal to what was installed ->
  UNCHANGED; otherwise, unchanged by users -> UPGRADE, changed (or deleted) by users ->
  CONFLICT (left as the user has it, and reported); an item the new version no longer has ->
  REMOVE if users left it alone, CONFLICT (kept) if they changed it.

Uninstalling removes what the install created and still exists, nothing else. Actions are
ordered so a reference always resolves: creations and upgrades by kind (sensor profiles,
config artefacts, rule templates, device profiles), removals in the reverse order.
"""

from __future__ import annotations

import enum
import hashlib
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any
from uuid import UUID

import msgspec

from outpost_contracts import fleet as api
from outpost_contracts import patch
from outpost_contracts.base import Event
from outpost_contracts.errors import Conflict, validation_error

VERSION = re.compile(r"(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)")


class ItemKind(enum.StrEnum):
    SENSOR_PROFILE = "SENSOR_PROFILE"
    CONFIG_ARTEFACT = "CONFIG_ARTEFACT"
    RULE_TEMPLATE = "RULE_TEMPLATE"
    DEVICE_PROFILE = "DEVICE_PROFILE"


# Dependency order: a device profile names sensor profiles, an artefact and rule templates.
KIND_ORDER = {kind: i for i, kind in enumerate(ItemKind)}


class PackItem(msgspec.Struct, frozen=True, kw_only=True):
    kind: ItemKind
    key: str
    content: dict[str, Any]


class PackDocument(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    version: str
    items: tuple[PackItem, ...]


ItemId = tuple[ItemKind, str]


class InstalledItem(msgspec.Struct, frozen=True, kw_only=True):
    resource_id: UUID
    installed_digest: str
    current_digest: str | None  # None: the resource no longer exists

    @property
    def user_changed(self) -> bool:
        return self.current_digest != self.installed_digest


class Install(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    version: str
    digest: str  # of the whole document installed
    items: dict[ItemId, InstalledItem]


class Action(enum.StrEnum):
    CREATE = "CREATE"
    UPGRADE = "UPGRADE"
    UNCHANGED = "UNCHANGED"
    CONFLICT = "CONFLICT"
    REMOVE = "REMOVE"


class Step(msgspec.Struct, frozen=True, kw_only=True):
    action: Action
    kind: ItemKind
    key: str
    content: dict[str, Any] | None = None  # what to create or upgrade to
    resource_id: UUID | None = None  # the resource an install created


class Plan(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    version: str
    steps: tuple[Step, ...]

    @property
    def changes(self) -> tuple[Step, ...]:
        """The steps that change something (CREATE, UPGRADE, REMOVE)."""
        quiet = (Action.UNCHANGED, Action.CONFLICT)
        return tuple(s for s in self.steps if s.action not in quiet)

    @property
    def conflicts(self) -> tuple[Step, ...]:
        return tuple(s for s in self.steps if s.action is Action.CONFLICT)


def digest(value: Any) -> str:
    """SHA-256 of the canonical JSON (keys sorted): the same content, the same digest."""
    return hashlib.sha256(msgspec.json.encode(value, order="sorted")).hexdigest()


def version_key(version: str) -> tuple[int, int, int]:
    match = VERSION.fullmatch(version)
    if match is None:
        raise validation_error("version", "must be MAJOR.MINOR.PATCH")
    major, minor, patch = (int(g) for g in match.groups())
    return major, minor, patch


def check(document: PackDocument) -> None:
    if not document.name.strip():
        raise validation_error("name", "must not be blank")
    version_key(document.version)
    ids = [(i.kind, i.key) for i in document.items]
    if len(ids) != len(set(ids)):
        raise validation_error("items", "each kind and key may appear once")


def _ordered(steps: list[Step]) -> tuple[Step, ...]:
    removals = sorted(
        (s for s in steps if s.action is Action.REMOVE),
        key=lambda s: (-KIND_ORDER[s.kind], s.key),
    )
    rest = sorted(
        (s for s in steps if s.action is not Action.REMOVE),
        key=lambda s: (KIND_ORDER[s.kind], s.key),
    )
    return (*rest, *removals)


def plan_import(document: PackDocument, previous: Install | None) -> Plan:
    check(document)
    if previous is not None and previous.name != document.name:
        raise Conflict("the install belongs to another pack")
    steps: list[Step] = []
    if previous is None:
        steps = [
            Step(action=Action.CREATE, kind=i.kind, key=i.key, content=i.content)
            for i in document.items
        ]
        return Plan(name=document.name, version=document.version, steps=_ordered(steps))
    new, old = version_key(document.version), version_key(previous.version)
    if new < old:
        raise Conflict(
            f"version {previous.version} is installed: no downgrade to {document.version}",
            details={"installed": previous.version},
        )
    if new == old:
        if digest(document) != previous.digest:
            raise Conflict(f"version {document.version} is installed with other content")
        steps = [
            Step(action=Action.UNCHANGED, kind=kind, key=key, resource_id=item.resource_id)
            for (kind, key), item in previous.items.items()
        ]
        return Plan(name=document.name, version=document.version, steps=_ordered(steps))
    for item in document.items:
        had = previous.items.get((item.kind, item.key))
        if had is None:
            action = Action.CREATE
        elif digest(item.content) == had.installed_digest:
            action = Action.UNCHANGED
        elif had.user_changed:
            action = Action.CONFLICT
        else:
            action = Action.UPGRADE
        steps.append(
            Step(
                action=action,
                kind=item.kind,
                key=item.key,
                content=item.content if action in (Action.CREATE, Action.UPGRADE) else None,
                resource_id=None if had is None else had.resource_id,
            )
        )
    kept = {(i.kind, i.key) for i in document.items}
    for (kind, key), had in previous.items.items():
        if (kind, key) in kept or had.current_digest is None:
            continue
        action = Action.CONFLICT if had.user_changed else Action.REMOVE
        steps.append(Step(action=action, kind=kind, key=key, resource_id=had.resource_id))
    return Plan(name=document.name, version=document.version, steps=_ordered(steps))


def plan_uninstall(previous: Install) -> Plan:
    """Remove what the install created and still exists; nothing else."""
    steps = [
        Step(action=Action.REMOVE, kind=kind, key=key, resource_id=item.resource_id)
        for (kind, key), item in previous.items.items()
        if item.current_digest is not None
    ]
    return Plan(name=previous.name, version=previous.version, steps=_ordered(steps))


def installed(
    document: PackDocument,
    plan: Plan,
    previous: Install | None,
    created: Mapping[ItemId, UUID],
) -> Install:
    """The install record after carrying out ``plan``: ``created`` maps each CREATE step to
    the resource it made. A conflicting item stays recorded with what was installed before,
    so the next upgrade still sees the user's change; a removed one is forgotten."""
    before = previous.items if previous is not None else {}
    contents = {(i.kind, i.key): i.content for i in document.items}
    items: dict[ItemId, InstalledItem] = {}
    for step in plan.steps:
        item_id = (step.kind, step.key)
        if step.action is Action.REMOVE:
            continue
        if step.action is Action.CREATE:
            done = digest(contents[item_id])
            items[item_id] = InstalledItem(
                resource_id=created[item_id], installed_digest=done, current_digest=done
            )
        elif step.action is Action.UPGRADE:
            done = digest(contents[item_id])
            items[item_id] = msgspec.structs.replace(
                before[item_id], installed_digest=done, current_digest=done
            )
        else:
            items[item_id] = before[item_id]
    return Install(
        name=document.name, version=document.version, digest=digest(document), items=items
    )


# --- the pack aggregate (ADR 0092) --------------------------------------------------------
# A pack resource of an organization is either AUTHORED (made from its own items, which
# export turns into a document) or IMPORTED (an install of a document: what the install
# created, per item). The use case plans an import with ``plan_import`` against
# ``install_of(pack, current digests)``, carries the plan out, and records the result with
# ``RecordInstall``.

PACK = "pack"


class Pack(msgspec.Struct, frozen=True, kw_only=True):
    id: UUID
    name: str
    pack_version: str
    origin: api.PackOrigin
    version: int
    refs: tuple[api.PackItemRef, ...] = ()  # AUTHORED: the organization's items
    installed: tuple[api.InstalledPackItem, ...] = ()  # IMPORTED: what the install holds
    document: dict[str, Any] = msgspec.field(default_factory=dict)  # IMPORTED: as imported
    digest: str = ""  # IMPORTED: the document's
    conflicts: tuple[str, ...] = ()
    description: str | None = None
    deleted: bool = False


class RecordInstall(msgspec.Struct, frozen=True, kw_only=True):
    document: api.PackDocument
    install: Install
    conflicts: tuple[str, ...] = ()


class DeletePack(msgspec.Struct, frozen=True, kw_only=True):
    removed: tuple[UUID, ...] = ()  # an uninstall: the resources it removed


class _ChangePack(msgspec.Struct, frozen=True, kw_only=True):
    """A ``PackPatch`` in the state's names (``patch.changes`` reads both alike)."""

    name: Any
    pack_version: Any
    refs: Any
    description: Any


PackCommand = api.CreatePack | api.PackPatch | RecordInstall | DeletePack

PACK_FIELDS = {
    "name": "name",
    "version": "pack_version",
    "items": "refs",
    "description": "description",
}


def _checked_refs(refs: Any) -> tuple[api.PackItemRef, ...]:
    refs = tuple(refs)
    if len({(r.kind, r.id) for r in refs}) != len(refs):
        raise validation_error("items", "each item may appear once")
    if any(r.kind is api.PackItemKind.RULE_TEMPLATE for r in refs):
        raise validation_error(
            "items", "rule templates travel inside their device profile: name the profile"
        )
    return refs


def _checked_version(version: str) -> str:
    version_key(version)
    return version


def _item_id(item: api.InstalledPackItem) -> ItemId:
    return ItemKind(item.kind), item.key


def decide_pack(state: Pack | None, command: PackCommand, now: datetime) -> list[Event]:
    if isinstance(command, api.CreatePack):
        if state is not None:
            raise Conflict("the pack already exists")
        if not command.name.strip():
            raise validation_error("name", "must not be blank")
        return [
            api.PackCreated(
                name=command.name,
                pack_version=_checked_version(command.version),
                items=list(_checked_refs(command.items)),
                description=command.description,
            )
        ]
    if isinstance(command, RecordInstall):
        if state is not None and (state.deleted or state.origin is not api.PackOrigin.IMPORTED):
            raise Conflict("an authored pack of this organization has that name")
        install = command.install
        items = [
            api.InstalledPackItem(
                kind=api.PackItemKind(kind),
                key=key,
                resource_id=item.resource_id,
                installed_digest=item.installed_digest,
            )
            for (kind, key), item in sorted(install.items.items())
        ]
        return [
            api.PackInstalled(
                name=install.name,
                pack_version=install.version,
                digest=install.digest,
                document=msgspec.to_builtins(command.document),
                items=items,
                conflicts=list(command.conflicts),
                previous_version=None if state is None else state.pack_version,
            )
        ]
    live = patch.live(state, "pack")
    if isinstance(command, DeletePack):
        return [api.PackDeleted(removed=list(command.removed))]
    if live.origin is api.PackOrigin.IMPORTED:
        raise Conflict(
            "an imported pack changes by importing a newer version of it, not by a PATCH"
        )
    changes = patch.changes(
        live,
        _ChangePack(
            name=command.name,
            pack_version=command.version,
            refs=command.items,
            description=command.description,
        ),
        PACK_FIELDS,
        {
            "refs": lambda _s, refs: _checked_refs(refs),
            "pack_version": lambda _s, v: _checked_version(v),
        },
    )
    if not changes:
        return []
    if "version" in changes and version_key(changes["version"]) <= version_key(live.pack_version):
        raise validation_error("version", f"must be greater than {live.pack_version}")
    if "name" in changes and not str(changes["name"]).strip():
        raise validation_error("name", "must not be blank")
    new = msgspec.structs.replace(live, **{PACK_FIELDS[k]: v for k, v in changes.items()})
    return [
        api.PackChanged(
            changed=list(changes),
            name=new.name,
            pack_version=new.pack_version,
            items=list(new.refs),
            description=new.description,
        )
    ]


def evolve_pack(state: Pack | None, event: Event, stream_id: UUID) -> Pack | None:
    version = 1 if state is None else state.version + 1
    if isinstance(event, api.PackCreated):
        return Pack(
            id=stream_id,
            name=event.name,
            pack_version=event.pack_version,
            origin=api.PackOrigin.AUTHORED,
            refs=tuple(event.items),
            description=event.description,
            version=version,
        )
    if isinstance(event, api.PackInstalled):
        return Pack(
            id=stream_id,
            name=event.name,
            pack_version=event.pack_version,
            origin=api.PackOrigin.IMPORTED,
            installed=tuple(event.items),
            document=event.document,
            digest=event.digest,
            conflicts=tuple(event.conflicts),
            description=event.document.get("description"),
            version=version,
        )
    assert state is not None, f"{type(event).__name__} before its pack was created"
    if isinstance(event, api.PackChanged):
        return msgspec.structs.replace(
            state,
            name=event.name,
            pack_version=event.pack_version,
            refs=tuple(event.items),
            description=event.description,
            version=version,
        )
    if isinstance(event, api.PackDeleted):
        return msgspec.structs.replace(state, deleted=True, version=version)
    return msgspec.structs.replace(state, version=version)


def install_of(pack: Pack, current: Mapping[UUID, str | None]) -> Install:
    """The install record ``plan_import`` and ``plan_uninstall`` take: ``current`` maps each
    resource the install holds to its digest now (None, or absent: users deleted it)."""
    return Install(
        name=pack.name,
        version=pack.pack_version,
        digest=pack.digest,
        items={
            _item_id(item): InstalledItem(
                resource_id=item.resource_id,
                installed_digest=item.installed_digest,
                current_digest=current.get(item.resource_id),
            )
            for item in pack.installed
        },
    )


def document_of(document: api.PackDocument) -> PackDocument:
    """The planner's view of a pack document."""
    return PackDocument(
        name=document.name,
        version=document.version,
        items=tuple(
            PackItem(kind=ItemKind(i.kind), key=i.key, content=i.content) for i in document.items
        ),
    )
