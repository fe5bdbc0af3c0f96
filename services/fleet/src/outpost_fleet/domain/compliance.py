"""Compliance of a binding or an artefact version: of the devices it targets, how many report
the desired state (in sync), how many report something else (drifted), and how many have not
answered since it was delivered (pending) (ADR 0088).

A device is compared on the keys that matter (for a binding: the leaves its explanation gives
it; for a whole device: every leaf of its effective desired state): in sync when its reported
state has the same value at each of those JSON Pointers, pending when it has reported nothing
since the desired state it is compared with was delivered, drifted otherwise. A device that
was in sync and later reports something else is drifted again: only the newest report counts.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import msgspec

from outpost_fleet.domain.desired_state import at, leaves, pointer


class DeviceCompliance(enum.StrEnum):
    IN_SYNC = "IN_SYNC"
    DRIFTED = "DRIFTED"
    PENDING = "PENDING"


class Counts(msgspec.Struct, frozen=True, kw_only=True):
    targeted: int = 0
    in_sync: int = 0
    drifted: int = 0
    pending: int = 0


def device_compliance(
    desired: dict[str, Any],
    delivered_at: datetime,
    reported: dict[str, Any] | None,
    reported_at: datetime | None,
    keys: Iterable[str] | None = None,
) -> DeviceCompliance:
    """``keys``: the JSON Pointers compared (None: every leaf of ``desired``)."""
    if reported is None or reported_at is None or reported_at < delivered_at:
        return DeviceCompliance.PENDING
    wanted = None if keys is None else set(keys)
    for path in leaves(desired):
        if wanted is not None and pointer(path) not in wanted:
            continue
        if at(reported, path) != at(desired, path):
            return DeviceCompliance.DRIFTED
    return DeviceCompliance.IN_SYNC


def count(statuses: Iterable[DeviceCompliance]) -> Counts:
    tally = {s: 0 for s in DeviceCompliance}
    for status in statuses:
        tally[status] += 1
    return Counts(
        targeted=sum(tally.values()),
        in_sync=tally[DeviceCompliance.IN_SYNC],
        drifted=tally[DeviceCompliance.DRIFTED],
        pending=tally[DeviceCompliance.PENDING],
    )


def drifted(previous: DeviceCompliance | None, current: DeviceCompliance) -> bool:
    """Whether a report makes a device drift: it was in sync and now reports something else
    (ADR 0093: the fleet's ``DeviceConfigDrifted``, once per drift, not on every report)."""
    return previous is DeviceCompliance.IN_SYNC and current is DeviceCompliance.DRIFTED


def differing(
    desired: dict[str, Any], reported: dict[str, Any], keys: Iterable[str] | None = None
) -> list[str]:
    """The JSON Pointers of ``desired``'s leaves (of ``keys``) that ``reported`` differs at."""
    wanted = None if keys is None else set(keys)
    found: list[str] = []
    for path in leaves(desired):
        name = pointer(path)
        if wanted is not None and name not in wanted:
            continue
        if at(reported, path) != at(desired, path):
            found.append(name)
    return found
