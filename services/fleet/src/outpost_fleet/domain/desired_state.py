"""A device's effective desired state: every binding that applies to it, merged (ADR 0088).

Precedence is a total order on bindings, so the result never depends on the order bindings
were created or listed in:

1. specificity of the target: ORGANIZATION < PROFILE < SITE < GROUP < DEVICE;
2. then ``priority`` (a higher number later, so it wins);
3. then the binding's id (UUIDs compared as 128-bit numbers), a tiebreak that is stable and
   belongs to the binding itself.

The documents are merged in that order with RFC 7396 (``outpost_contracts.patch.merge_patch``,
the one merge the platform has): objects merge key by key, ``null`` removes a key a lower
binding set, anything else (arrays included) replaces. The last binding wins.

The explanation names, for each leaf of the merged document (a value that is not an object, or
an empty object) as a JSON Pointer (RFC 6901), the binding whose document last named that
path: the binding behind the key (``GET /devices/{id}/state?explain=true``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any
from uuid import UUID

import msgspec

from outpost_contracts.commands import MAX_DOCUMENT_BYTES
from outpost_contracts.fleet import Target, TargetType
from outpost_contracts.patch import merge_patch

SPECIFICITY: dict[TargetType, int] = {
    TargetType.ORGANIZATION: 0,
    TargetType.PROFILE: 1,
    TargetType.SITE: 2,
    TargetType.GROUP: 3,
    TargetType.DEVICE: 4,
}


class BindingRef(msgspec.Struct, frozen=True, kw_only=True):
    """What precedence needs of a binding."""

    id: UUID
    target: Target
    priority: int


class ResolvedBinding(msgspec.Struct, frozen=True, kw_only=True):
    """A binding with the artefact version it means now ("latest" resolved) and its document."""

    binding: BindingRef
    artefact_id: UUID
    artefact_version: int
    document: dict[str, Any]


class DeviceFacts(msgspec.Struct, frozen=True, kw_only=True):
    """Where a device sits: what decides which bindings apply to it."""

    id: UUID
    site_id: UUID | None = None
    group_ids: frozenset[UUID] = frozenset()
    profile_id: UUID | None = None


class EffectiveState(msgspec.Struct, frozen=True, kw_only=True):
    document: dict[str, Any]
    explanation: dict[str, UUID]  # JSON Pointer of each leaf -> binding id
    applied: tuple[UUID, ...]  # the bindings merged, in precedence order
    size: int  # bytes, JSON-encoded

    @property
    def deliverable(self) -> bool:
        """Whether it fits devices' desired state (``MAX_DOCUMENT_BYTES``)."""
        return self.size <= MAX_DOCUMENT_BYTES


def precedence(binding: BindingRef) -> tuple[int, int, int]:
    """The sort key: lowest first, the last one wins."""
    return (SPECIFICITY[binding.target.type], binding.priority, binding.id.int)


def applies(target: Target, device: DeviceFacts) -> bool:
    """Whether a binding on ``target`` applies to ``device`` (an ORGANIZATION target applies
    to every device of the organization the binding belongs to)."""
    match target.type:
        case TargetType.ORGANIZATION:
            return True
        case TargetType.PROFILE:
            return target.id is not None and target.id == device.profile_id
        case TargetType.SITE:
            return target.id is not None and target.id == device.site_id
        case TargetType.GROUP:
            return target.id in device.group_ids
        case TargetType.DEVICE:
            return target.id == device.id


def pointer(path: Iterable[str]) -> str:
    """RFC 6901: ``~`` is ``~0``, ``/`` is ``~1``; the root is ``""``."""
    return "".join("/" + part.replace("~", "~0").replace("/", "~1") for part in path)


def leaves(document: Mapping[str, Any], prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """The paths of the document's leaves: values that are not objects, and empty objects."""
    for key, value in document.items():
        path = (*prefix, key)
        if isinstance(value, dict) and value:
            yield from leaves(value, path)
        else:
            yield path


ABSENT: Any = object()  # what ``at`` finds where a document has no such path


def at(document: Any, path: tuple[str, ...]) -> Any:
    """The value at ``path`` in a JSON document, or ``ABSENT``."""
    node = document
    for part in path:
        if not isinstance(node, dict) or part not in node:
            return ABSENT
        node = node[part]
    return node


def _names(patch: Any, path: tuple[str, ...]) -> bool:
    """Whether a merge patch names ``path`` with a value (not ``null``)."""
    value = at(patch, path)
    return value is not ABSENT and value is not None


def effective_state(device: DeviceFacts, bindings: Iterable[ResolvedBinding]) -> EffectiveState:
    """Merge every binding that applies to ``device``, in precedence order."""
    ordered = sorted(
        (b for b in bindings if applies(b.binding.target, device)),
        key=lambda b: precedence(b.binding),
    )
    document: dict[str, Any] = {}
    for resolved in ordered:
        document = merge_patch(document, resolved.document)
    explanation: dict[str, UUID] = {}
    for path in leaves(document):
        owner = next(b for b in reversed(ordered) if _names(b.document, path))
        explanation[pointer(path)] = owner.binding.id
    return EffectiveState(
        document=document,
        explanation=explanation,
        applied=tuple(b.binding.id for b in ordered),
        size=len(msgspec.json.encode(document)),
    )


def resolve(
    binding: BindingRef,
    artefact_id: UUID,
    artefact_version: int | None,
    versions: Mapping[int, dict[str, Any]],
) -> ResolvedBinding | None:
    """The binding with its document: the pinned version, or the newest of ``versions`` (the
    artefact's live versions) for "latest"; None when there is nothing to apply."""
    if not versions:
        return None
    version = max(versions) if artefact_version is None else artefact_version
    if version not in versions:
        return None
    return ResolvedBinding(
        binding=binding,
        artefact_id=artefact_id,
        artefact_version=version,
        document=versions[version],
    )
