"""Readings: reference pairs, a sensor under test co-located with a reference sensor, and
their comparison over time-aligned buckets (issue 24, ADR 0098).

A pair names the sensor under test (``test``) and the reference (``reference``), each a
device and a sensor key of the organization, both ``NUMBER`` sensors and not the same one,
and a ``windowSeconds``: the width of the buckets readings are aligned into when no
``interval`` is asked for (one of the aggregated queries' intervals: 60, 300, 900, 3600,
86400). Which sensors a pair compares is its identity: a patch changes its name, description
and window only.

The comparison (``GET /api/v1/reference-pairs/{id}/comparison``) averages each sensor per
bucket (from the rollups), keeps the buckets where both have readings, and computes over
them, with x the test sensor's bucket mean and y the reference's:

- ``n``: such buckets; ``bias`` = mean(x - y); ``mae`` = mean(|x - y|);
  ``rmse`` = sqrt(mean((x - y)^2)); ``r``: Pearson's correlation of x and y;
- ``slope`` and ``intercept``: the ordinary least squares fit of the reference on the
  test sensor, y ≈ slope * x + intercept, so ``corrected = value * slope + intercept`` maps
  a reading of the sensor under test onto the reference's scale.

Every figure is null with fewer than 2 buckets; ``slope``, ``intercept`` and ``r`` are null
when the test sensor's values do not vary (and ``r`` when the reference's do not).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

import msgspec

from outpost_contracts.base import Contract, Empty, Event, Instant, Request, wire_tag
from outpost_contracts.query import ListQuery, Page
from outpost_contracts.readings import SERVICE, Interval, SensorKey, TimeZoneName
from outpost_contracts.rpc import Operation

PairName = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
Description = Annotated[str, msgspec.Meta(max_length=1024)]
# The aggregated queries' intervals, in seconds (1m, 5m, 15m, 1h, 1d).
WindowSeconds = Literal[60, 300, 900, 3600, 86400]
DEFAULT_WINDOW_SECONDS: WindowSeconds = 300
# Points of a comparison's series, at most (a reply stays well under the broker's 1 MB
# message limit: 10,080 points would not); the statistics alone take any allowed range.
MAX_SERIES_POINTS = 5000
# The sensor type a pair compares (the devices service's ``valueType``).
NUMBER = "NUMBER"


class SensorRef(Contract, kw_only=True, frozen=True):
    """A sensor of a device: ``deviceId`` and the sensor's ``key``."""

    device_id: UUID
    sensor: SensorKey


# --- events -----------------------------------------------------------------------------


class ReferencePairCreated(
    Event, tag=wire_tag(SERVICE, "ReferencePairCreated", 1), kw_only=True, frozen=True
):
    name: str
    test: SensorRef
    reference: SensorRef
    window_seconds: int
    description: str | None = None


class ReferencePairUpdated(
    Event, tag=wire_tag(SERVICE, "ReferencePairUpdated", 1), kw_only=True, frozen=True
):
    """``changed`` names the changed fields (camelCase); each carries its new value."""

    changed: list[str]
    name: str | None = None
    description: str | None = None
    window_seconds: int | None = None


class ReferencePairDeleted(
    Event, tag=wire_tag(SERVICE, "ReferencePairDeleted", 1), kw_only=True, frozen=True
):
    """The pair is gone (its sensors' readings are untouched)."""


EVENT_TYPES: tuple[type[Event], ...] = (
    ReferencePairCreated,
    ReferencePairUpdated,
    ReferencePairDeleted,
)

# --- requests ---------------------------------------------------------------------------


class CreateReferencePair(Request, kw_only=True, frozen=True):
    name: PairName
    test: SensorRef
    reference: SensorRef
    window_seconds: WindowSeconds = DEFAULT_WINDOW_SECONDS
    description: Description | None = None


class ReferencePairPatch(Request, kw_only=True, frozen=True):
    """A JSON merge patch: the sensors a pair compares are its identity and do not change."""

    name: PairName | msgspec.UnsetType = msgspec.UNSET
    description: Description | msgspec.UnsetType | None = msgspec.UNSET
    window_seconds: WindowSeconds | msgspec.UnsetType = msgspec.UNSET


class UpdateReferencePair(Request, kw_only=True, frozen=True):
    id: UUID
    patch: ReferencePairPatch
    expected_version: int | None = None  # from If-Match


class GetReferencePair(Request, kw_only=True, frozen=True):
    id: UUID


class DeleteReferencePair(Request, kw_only=True, frozen=True):
    id: UUID
    expected_version: int | None = None  # from If-Match


class ListReferencePairs(Request, kw_only=True, frozen=True):
    query: ListQuery = msgspec.field(default_factory=ListQuery)


class CompareReferencePair(Request, kw_only=True, frozen=True):
    """The comparison over ``[from, to)`` widened to whole buckets of ``interval`` (the
    pair's ``windowSeconds`` when absent) in ``timezone``. ``series``: the buckets'
    two means for charts; ``corrected``: each bucket's corrected test value too (implies
    ``series``); a series covers at most MAX_SERIES_POINTS buckets."""

    id: UUID
    from_: Instant = msgspec.field(name="from")
    to: Instant
    interval: Interval | None = None
    timezone: TimeZoneName = "UTC"
    series: bool = False
    corrected: bool = False


# --- replies ----------------------------------------------------------------------------


class ReferencePairView(Contract, kw_only=True, frozen=True):
    id: UUID
    name: str
    test: SensorRef
    reference: SensorRef
    window_seconds: int
    created_at: datetime
    updated_at: datetime
    version: int
    description: str | None = None
    object: str = "referencePair"


class ComparisonPoint(Contract, kw_only=True, frozen=True):
    """One bucket both sensors have readings in: its start and each sensor's mean;
    ``corrected`` (asked for, and a slope there is) = test * slope + intercept."""

    ts: datetime
    test: float
    reference: float
    corrected: float | msgspec.UnsetType | None = msgspec.UNSET


class ComparisonView(Contract, kw_only=True, frozen=True):
    """The statistics of a pair over the buckets both sensors have readings in (see the
    module's documentation for each figure and when it is null)."""

    pair_id: UUID
    from_: datetime = msgspec.field(name="from")
    to: datetime
    interval: str
    timezone: str
    n: int
    bias: float | None = None
    mae: float | None = None
    rmse: float | None = None
    r: float | None = None
    slope: float | None = None
    intercept: float | None = None
    series: list[ComparisonPoint] | msgspec.UnsetType = msgspec.UNSET
    object: Literal["referencePairComparison"] = "referencePairComparison"


CREATE_REFERENCE_PAIR = Operation(
    SERVICE, "CreateReferencePair", CreateReferencePair, ReferencePairView
)
GET_REFERENCE_PAIR = Operation(SERVICE, "GetReferencePair", GetReferencePair, ReferencePairView)
LIST_REFERENCE_PAIRS = Operation(
    SERVICE, "ListReferencePairs", ListReferencePairs, Page[ReferencePairView]
)
UPDATE_REFERENCE_PAIR = Operation(
    SERVICE, "UpdateReferencePair", UpdateReferencePair, ReferencePairView
)
DELETE_REFERENCE_PAIR = Operation(SERVICE, "DeleteReferencePair", DeleteReferencePair, Empty)
COMPARE_REFERENCE_PAIR = Operation(
    SERVICE, "CompareReferencePair", CompareReferencePair, ComparisonView
)
