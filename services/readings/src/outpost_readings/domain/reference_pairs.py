"""Reference pairs as a decider (create, change by JSON merge patch, delete), and the pure
rules of their comparison: which interval the buckets have, which figures are null, what the
corrected series is (ADR 0098). No I/O, no clock, no ids made here.

What needs the read models (both sensors are the organization's NUMBER sensors) is checked by
the use cases in the same transaction (app/reference_pairs.py). The statistics themselves are
computed by Postgres over the rollups (adapters/reference_pair_store.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import datetime
from uuid import UUID

import msgspec

from outpost_contracts import patch
from outpost_contracts import reference_pairs as api
from outpost_contracts.base import Event
from outpost_contracts.errors import Conflict, validation_error

REFERENCE_PAIR = "reference_pair"

# The aggregated queries' intervals by their width in seconds (``windowSeconds``).
INTERVAL_OF_SECONDS = {60: "1m", 300: "5m", 900: "15m", 3600: "1h", 86400: "1d"}


class Delete(msgspec.Struct, frozen=True, kw_only=True):
    """Delete the pair (DELETE)."""


class ReferencePair(msgspec.Struct, frozen=True, kw_only=True):
    id: UUID
    version: int
    name: str
    test: api.SensorRef
    reference: api.SensorRef
    window_seconds: int
    description: str | None = None
    deleted: bool = False


# API name → state attribute, in the order ``ReferencePairUpdated.changed`` lists them.
FIELDS = {
    "name": "name",
    "description": "description",
    "windowSeconds": "window_seconds",
}

Command = api.CreateReferencePair | api.ReferencePairPatch | Delete


def same_sensor(a: api.SensorRef, b: api.SensorRef) -> bool:
    return a.device_id == b.device_id and a.sensor == b.sensor


def decide(state: ReferencePair | None, command: Command, now: datetime) -> list[Event]:
    if isinstance(command, api.CreateReferencePair):
        if state is not None:
            raise Conflict("the reference pair already exists")
        if same_sensor(command.test, command.reference):
            raise validation_error("reference", "must not be the sensor under test")
        return [
            api.ReferencePairCreated(
                name=command.name,
                test=command.test,
                reference=command.reference,
                window_seconds=command.window_seconds,
                description=command.description,
            )
        ]
    live = patch.live(state, "reference pair")
    if isinstance(command, Delete):
        return [api.ReferencePairDeleted()]
    changes = patch.changes(live, command, FIELDS)
    if not changes:
        return []
    return [
        api.ReferencePairUpdated(
            changed=list(changes), **{FIELDS[k]: v for k, v in changes.items()}
        )
    ]


def evolve(state: ReferencePair | None, event: Event, stream_id: UUID) -> ReferencePair | None:
    if isinstance(event, api.ReferencePairCreated):
        return ReferencePair(
            id=stream_id,
            version=1,
            name=event.name,
            test=event.test,
            reference=event.reference,
            window_seconds=event.window_seconds,
            description=event.description,
        )
    assert state is not None, f"{type(event).__name__} before its pair was created"
    if isinstance(event, api.ReferencePairUpdated):
        values = {FIELDS[k]: getattr(event, FIELDS[k]) for k in event.changed if k in FIELDS}
        return msgspec.structs.replace(state, version=state.version + 1, **values)
    if isinstance(event, api.ReferencePairDeleted):
        return msgspec.structs.replace(state, version=state.version + 1, deleted=True)
    return msgspec.structs.replace(state, version=state.version + 1)


# --- the comparison ----------------------------------------------------------------------


def interval_of(requested: str | None, window_seconds: int) -> str:
    """The buckets' interval: the one asked for, else the pair's matching window."""
    return requested if requested is not None else INTERVAL_OF_SECONDS[window_seconds]


@dataclass(frozen=True)
class Statistics:
    """What Postgres computed over the ``n`` buckets both sensors have readings in."""

    n: int
    bias: float | None = None
    mae: float | None = None
    rmse: float | None = None
    r: float | None = None
    slope: float | None = None
    intercept: float | None = None


def _finite(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def settle(stats: Statistics) -> Statistics:
    """The figures as the API states them: all null with fewer than 2 buckets (one bucket
    has no spread, no fit); a non-finite value (an overflow) null; ``slope`` and
    ``intercept`` null together (no fit without the test sensor varying)."""
    if stats.n < 2:
        return Statistics(n=stats.n)
    slope, intercept = _finite(stats.slope), _finite(stats.intercept)
    if slope is None or intercept is None:
        slope = intercept = None
    return replace(
        stats,
        bias=_finite(stats.bias),
        mae=_finite(stats.mae),
        rmse=_finite(stats.rmse),
        r=_finite(stats.r),
        slope=slope,
        intercept=intercept,
    )
