"""Which devices a change affects, what is delivered to them, and in what batches (ADR 0093).

A change names a set of devices (a ``Selection``): a binding's target, every target of the
bindings of an artefact, one device whose site, group or profile moved. The recompute then
computes the effective state of exactly those devices and delivers only the ones whose
``digest`` moved. Everything here is pure: the store turns a ``Selection`` into SQL, the
worker calls devices with what ``desired`` and ``batches`` give it.

The digest covers what is delivered: the document and, for each leaf, the binding behind it
(``sources``). The same document set by another binding is a new digest, so
``GET /devices/{id}/state?explain=true`` never names a binding that no longer sets the key.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, TypeVar
from uuid import UUID

import msgspec

from outpost_contracts.device_config import (
    MAX_BATCH,
    FleetDesiredState,
    SetFleetDesiredStatesResult,
    Source,
)
from outpost_contracts.fleet import Target, TargetType
from outpost_fleet.domain.desired_state import EffectiveState, ResolvedBinding

T = TypeVar("T")


class Selection(msgspec.Struct, frozen=True, kw_only=True):
    """A set of an organization's devices: every device (``everything``), or those on one of
    the sites, in one of the groups, with one of the profiles, named, or whose effective
    state, as last computed, merged one of the ``applied`` bindings (a binding changed or
    removed reaches the devices it applied to)."""

    everything: bool = False
    site_ids: frozenset[UUID] = frozenset()
    group_ids: frozenset[UUID] = frozenset()
    profile_ids: frozenset[UUID] = frozenset()
    device_ids: frozenset[UUID] = frozenset()
    applied: frozenset[UUID] = frozenset()

    @property
    def empty(self) -> bool:
        return not (
            self.everything
            or self.site_ids
            or self.group_ids
            or self.profile_ids
            or self.device_ids
            or self.applied
        )

    def __or__(self, other: Selection) -> Selection:
        if self.everything or other.everything:
            return EVERYTHING
        return Selection(
            site_ids=self.site_ids | other.site_ids,
            group_ids=self.group_ids | other.group_ids,
            profile_ids=self.profile_ids | other.profile_ids,
            device_ids=self.device_ids | other.device_ids,
            applied=self.applied | other.applied,
        )


NOTHING = Selection()
EVERYTHING = Selection(everything=True)


def of_target(target: Target) -> Selection:
    """The devices a binding on ``target`` applies to."""
    if target.type is TargetType.ORGANIZATION:
        return EVERYTHING
    if target.id is None:
        return NOTHING
    match target.type:
        case TargetType.SITE:
            return Selection(site_ids=frozenset({target.id}))
        case TargetType.GROUP:
            return Selection(group_ids=frozenset({target.id}))
        case TargetType.PROFILE:
            return Selection(profile_ids=frozenset({target.id}))
        case _:
            return Selection(device_ids=frozenset({target.id}))


def of_targets(targets: Iterable[Target]) -> Selection:
    """The devices a change of an artefact affects: those of each binding that uses it."""
    selection = NOTHING
    for target in targets:
        selection = selection | of_target(target)
        if selection.everything:
            break
    return selection


# What moves a device's effective state (camelCase, as ``DeviceUpdated.changed`` names them).
PLACEMENT_FIELDS = frozenset({"siteId", "groupId", "profileId"})


def of_bindings(binding_ids: Iterable[UUID]) -> Selection:
    """The devices whose effective state merged one of these bindings."""
    return Selection(applied=frozenset(binding_ids))


def device_moved(changed: Iterable[str]) -> bool:
    """Whether a device update changes which bindings apply to it."""
    return not PLACEMENT_FIELDS.isdisjoint(changed)


def canonical(value: Any) -> bytes:
    """JSON with sorted keys and no spaces: the same value, the same bytes."""
    return msgspec.json.encode(value, order="sorted")


def desired(
    device_id: UUID, state: EffectiveState, bindings: Mapping[UUID, ResolvedBinding]
) -> FleetDesiredState:
    """What devices are given for one device: the document, each leaf's source, the digest."""
    sources: dict[str, Source] = {}
    for path, binding_id in state.explanation.items():
        resolved = bindings[binding_id]
        sources[path] = Source(
            binding_id=binding_id,
            artefact_id=resolved.artefact_id,
            artefact_version=resolved.artefact_version,
            target_type=resolved.binding.target.type,
        )
    return FleetDesiredState(
        device_id=device_id,
        document=state.document,
        sources=sources,
        digest=digest(state.document, sources),
    )


def digest(document: Mapping[str, Any], sources: Mapping[str, Source]) -> str:
    """SHA-256 (hex) of the canonical document and sources."""
    payload = canonical({"document": document, "sources": sources})
    return hashlib.sha256(payload).hexdigest()


def artefact_versions(state: EffectiveState, bindings: Mapping[UUID, ResolvedBinding]) -> list[str]:
    """``artefactId@version`` of each binding merged: what the per-version status counts."""
    seen = {f"{bindings[b].artefact_id}@{bindings[b].artefact_version}" for b in state.applied}
    return sorted(seen)


def batches(items: Sequence[T], size: int = MAX_BATCH) -> Iterator[Sequence[T]]:
    """``items`` in consecutive slices of at most ``size`` (devices' ``MAX_BATCH``)."""
    if not 0 < size <= MAX_BATCH:
        raise ValueError(f"a batch holds 1 to {MAX_BATCH} items, not {size}")
    for start in range(0, len(items), size):
        yield items[start : start + size]


# --- delivery ---------------------------------------------------------------------------------


class Outcome(msgspec.Struct, frozen=True, kw_only=True):
    """What devices answered for one batch, per device: changed (a new desired state, sent
    to the device), unchanged (it had that digest already), missing (no such device any
    more), too large (over devices' 16 KiB)."""

    changed: frozenset[UUID]
    unchanged: frozenset[UUID]
    missing: frozenset[UUID]
    too_large: frozenset[UUID]
    unanswered: frozenset[UUID]  # sent but named in no list: delivered again later


def outcome(sent: Iterable[UUID], result: SetFleetDesiredStatesResult) -> Outcome:
    sent_ids = frozenset(sent)
    changed = frozenset(result.changed)
    unchanged = frozenset(result.unchanged)
    missing = frozenset(result.missing)
    too_large = frozenset(result.too_large)
    named = changed | unchanged | missing | too_large
    return Outcome(
        changed=changed & sent_ids,
        unchanged=unchanged & sent_ids,
        missing=missing & sent_ids,
        too_large=too_large & sent_ids,
        unanswered=sent_ids - named,
    )


RETRY_FIRST = timedelta(seconds=1)
RETRY_MAX = timedelta(minutes=5)


def retry_at(attempts: int, now: datetime) -> datetime:
    """When a batch that failed ``attempts`` times in a row is tried again: 1 s doubling,
    at most 5 minutes. A delivery is never given up: devices come back."""
    delay = min(RETRY_FIRST * 2 ** min(max(attempts - 1, 0), 16), RETRY_MAX)
    return now + delay
