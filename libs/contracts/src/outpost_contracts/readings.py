"""Readings: the device telemetry payload and raw reading queries."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

import msgspec

from outpost_contracts.base import Contract, Instant, Request, whole
from outpost_contracts.query import DEFAULT_LIMIT, MAX_LIMIT, ListQuery, Page
from outpost_contracts.rpc import Operation

SERVICE = "readings"

SENSOR_KEY_PATTERN = whole(r"[A-Za-z0-9_.:-]+")
SENSOR_KEY_MAX = 64
SensorKey = Annotated[
    str, msgspec.Meta(min_length=1, max_length=SENSOR_KEY_MAX, pattern=SENSOR_KEY_PATTERN)
]
# The same key on the ingest hot path: documented in the schema, not checked by the decoder
# (a regex per reading was most of decoding's cost); readings' validation checks each distinct
# key once per process (``outpost_readings.domain.readings.sensor_key_problem``) and refuses
# the message with msgspec's own wording, so devices see no difference.
WireSensorKey = Annotated[
    str,
    msgspec.Meta(
        extra_json_schema={
            "minLength": 1,
            "maxLength": SENSOR_KEY_MAX,
            "pattern": SENSOR_KEY_PATTERN,
        }
    ),
]


class TelemetryReading(msgspec.Struct, kw_only=True, frozen=True):
    """One reading as a device sends it (docs/api.md, Device protocol). ``ts`` defaults to the
    arrival time."""

    sensor: WireSensorKey
    value: float | int | bool | str
    ts: datetime | None = None


class TelemetryMessage(msgspec.Struct, kw_only=True, frozen=True):
    """What a device publishes on its telemetry subject: fixed by docs/api.md, so no renaming."""

    seq: int
    readings: Annotated[list[TelemetryReading], msgspec.Meta(max_length=10_000)]


class ListReadings(Request, kw_only=True, frozen=True):
    """Raw readings of one device, or of a group's or a site's devices (exactly one of the
    three; a group or site needs ``from`` and ``to``)."""

    device_id: UUID | None = None
    group_id: UUID | None = None
    site_id: UUID | None = None
    sensor: SensorKey | None = None
    from_: Instant | None = msgspec.field(default=None, name="from")
    to: Instant | None = None
    limit: Annotated[int, msgspec.Meta(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT
    after: str | None = None
    order: Literal["ASC", "DESC"] = "ASC"


class ReadingView(Contract, kw_only=True, frozen=True):
    device_id: UUID
    sensor: str
    ts: datetime
    value: float | int | bool | str


LIST_READINGS = Operation(SERVICE, "ListReadings", ListReadings, Page[ReadingView])


# --- aggregated, statistics, latest (decision 60) -----------------------------------------

Interval = Literal["1m", "5m", "15m", "1h", "1d"]

# The limits of reading queries (a ``validation_error`` beyond; the gateway documents them).
# At most this many buckets in one aggregate request (a week of minutes).
MAX_BUCKETS = 10_080
# A range served from the per-minute rollup: at most 105 days (10,080 buckets of 15m); an
# hourly or daily answer in a zone whose boundaries are not whole UTC hours (Asia/Kolkata)
# is served from it too, and so bounded by it.
MAX_MINUTE_SOURCE_DAYS = 105
# Devices x rollup rows one aggregate request may read (one device: any allowed range; a
# group of 100 devices: two weeks of minutes).
MAX_SOURCE_ROWS = 2_000_000
# Statistics read raw rows (percentiles): at most 31 days, and devices x days <= 1000.
MAX_STATS_DAYS = 31
MAX_STATS_DEVICE_DAYS = 1000
# Raw readings of a group or site: devices x days <= 7 (a device's own: no limit, it pages).
MAX_RAW_DEVICE_DAYS = 7
# Devices a group or site may resolve to in one query.
MAX_QUERY_DEVICES = 1000
AGGREGATE_FUNCTIONS = ("avg", "min", "max", "sum", "count", "first", "last")
# Rows of one page of aggregates: a week of minutes of one series.
MAX_AGGREGATE_LIMIT = 10_080
DEFAULT_AGGREGATE_LIMIT = 1000
Functions = Annotated[
    str,
    msgspec.Meta(
        min_length=1,
        max_length=64,
        pattern=whole(r"(avg|min|max|sum|count|first|last)(,(avg|min|max|sum|count|first|last))*"),
    ),
]
TimeZoneName = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]


class GetAggregates(Request, kw_only=True, frozen=True):
    """Numeric readings aggregated per bucket of ``interval`` in ``timezone``, per device and
    sensor, over ``[from, to)`` widened to whole buckets. ``fn``: comma-separated functions.
    Exactly one of ``device_id``, ``group_id``, ``site_id``."""

    device_id: UUID | None = None
    group_id: UUID | None = None
    site_id: UUID | None = None
    sensor: SensorKey | None = None
    from_: Instant = msgspec.field(name="from")
    to: Instant
    interval: Interval
    fn: Functions = "avg"
    timezone: TimeZoneName = "UTC"
    limit: Annotated[int, msgspec.Meta(ge=1, le=MAX_AGGREGATE_LIMIT)] = DEFAULT_AGGREGATE_LIMIT
    after: str | None = None


class AggregateView(Contract, kw_only=True, frozen=True):
    """One bucket of one device's sensor: ``ts`` is the instant the bucket starts; only the
    functions asked for are present."""

    device_id: UUID
    sensor: str
    ts: datetime
    avg: float | msgspec.UnsetType = msgspec.UNSET
    min: float | msgspec.UnsetType = msgspec.UNSET
    max: float | msgspec.UnsetType = msgspec.UNSET
    sum: float | msgspec.UnsetType = msgspec.UNSET
    count: int | msgspec.UnsetType = msgspec.UNSET
    first: float | msgspec.UnsetType = msgspec.UNSET
    last: float | msgspec.UnsetType = msgspec.UNSET


class GetStats(Request, kw_only=True, frozen=True):
    """Statistics of numeric readings over ``[from, to)`` per device and sensor."""

    device_id: UUID | None = None
    group_id: UUID | None = None
    site_id: UUID | None = None
    sensor: SensorKey | None = None
    from_: Instant = msgspec.field(name="from")
    to: Instant
    limit: Annotated[int, msgspec.Meta(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT
    after: str | None = None


class StatsView(Contract, kw_only=True, frozen=True):
    """``stddev`` is the sample standard deviation (null for one reading); percentiles are
    continuous (linear interpolation between the closest ranks, like ``percentile_cont``)."""

    device_id: UUID
    sensor: str
    count: int
    min: float
    max: float
    avg: float
    stddev: float | None
    p50: float
    p95: float
    p99: float


class GetLatest(Request, kw_only=True, frozen=True):
    """The newest reading of each sensor of a device, or of a group's or site's devices."""

    device_id: UUID | None = None
    group_id: UUID | None = None
    site_id: UUID | None = None
    sensor: SensorKey | None = None
    limit: Annotated[int, msgspec.Meta(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT
    after: str | None = None


GET_AGGREGATES = Operation(SERVICE, "GetAggregates", GetAggregates, Page[AggregateView])
GET_STATS = Operation(SERVICE, "GetStats", GetStats, Page[StatsView])
GET_LATEST = Operation(SERVICE, "GetLatest", GetLatest, Page[ReadingView])


# --- HTTP batch ingest (``POST /api/v1/readings/batch``, decision 59) --------------------

# Readings per request (docs/api.md, "HTTP ingest"); more is a ``validation_error`` naming
# ``readings``. The gateway's body limit (413) applies first.
MAX_BATCH_READINGS = 10_000


class BatchReading(Request, kw_only=True, frozen=True):
    """One reading of an HTTP batch. Checked item by item: a malformed item is a per-item
    rejection, not a failed request. ``ts`` is required (a retried request names the same
    instants, so the natural key keeps it from being stored twice)."""

    device_id: UUID
    sensor: SensorKey
    ts: Instant
    value: float | int | bool | str


class ReadingsBatch(Request, kw_only=True, frozen=True):
    """The HTTP body. Items are objects shaped like ``BatchReading``, decoded one by one."""

    readings: Annotated[list[dict[str, Any]], msgspec.Meta(max_length=MAX_BATCH_READINGS)]


class IngestReadings(Request, kw_only=True, frozen=True):
    """A slice of an HTTP batch (the gateway cuts a large body into slices that fit in a
    broker message); ``first_index`` is the slice's place in the request."""

    readings: Annotated[list[dict[str, Any]], msgspec.Meta(max_length=MAX_BATCH_READINGS)]
    first_index: Annotated[int, msgspec.Meta(ge=0)] = 0


class BatchRejection(Contract, kw_only=True, frozen=True):
    """Why the item at ``index`` of the request was not accepted: ``reason`` is a code
    (``invalid_item``, ``unknown_device``, ``device_decommissioned``, ``unknown_sensor``,
    ``wrong_type``, ``out_of_range``, ``ts_in_future``, ``ts_in_past``,
    ``duplicate_in_message``, ``invalid_text``), ``detail`` says more."""

    index: int
    reason: str
    detail: str = ""


class BatchOutcome(Contract, kw_only=True, frozen=True):
    """``accepted`` readings are in the TELEMETRY stream and will be stored by ingest."""

    accepted: int = 0
    rejected: list[BatchRejection] = msgspec.field(default_factory=list)


# Readings publishes an HTTP batch's accepted readings into TELEMETRY with this header set to
# ``http``: ingest stores them like a device's, but their ``seq`` (0) is not the device's
# numbering, so it does not count towards the device's seq gaps.
SOURCE_HEADER = "Outpost-Source"
SOURCE_HTTP = "http"
# A device's MQTT QoS 1/2 message as nats-server stored it in ``$MQTT_msgs`` (decision 82): a
# quarantined one's ``streamSeq`` is that stream's.
SOURCE_MQTT = "mqtt"

INGEST_READINGS = Operation(SERVICE, "IngestReadings", IngestReadings, BatchOutcome)


# --- quarantine (``/api/v1/admin/quarantine``) ---------------------------------------------


class ListQuarantine(Request, kw_only=True, frozen=True):
    """Refused readings, oldest first by default; ``after`` is the last id of a page."""

    device_id: UUID | None = None
    reason: Annotated[str, msgspec.Meta(max_length=64)] | None = None
    limit: Annotated[int, msgspec.Meta(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT
    after: UUID | None = None
    order: Literal["ASC", "DESC"] = "ASC"
    # The collection conventions (field filters, OData, totalCount; the gateway's
    # ``/api/v1/admin/quarantine``): when given, it is the whole query and the fields above
    # are not used.
    query: ListQuery | None = None


class QuarantinedReading(Contract, kw_only=True, frozen=True):
    """A refused reading (``readingIndex`` its place in the message) or a refused message
    (``readingIndex`` -1). ``payload`` is what was sent (a refused reading alone, as a
    one-reading message), as text."""

    id: UUID
    device_id: UUID
    sensor: str | None
    ts: datetime | None
    reason: str
    detail: str
    payload: str
    source: str
    subject: str | None
    stream_seq: int | None
    reading_index: int
    received_at: datetime


QuarantineIds = Annotated[list[UUID], msgspec.Meta(min_length=1, max_length=1000)]


class ReplayQuarantine(Request, kw_only=True, frozen=True):
    """Validate these quarantined readings again (e.g. after the sensor was declared): those
    now valid are stored and leave the quarantine, the others stay with their new reason."""

    ids: QuarantineIds


class DiscardQuarantine(Request, kw_only=True, frozen=True):
    ids: QuarantineIds


class QuarantineOutcome(Contract, kw_only=True, frozen=True):
    stored: int = 0
    still_refused: int = 0
    discarded: int = 0
    not_found: int = 0


LIST_QUARANTINE = Operation(SERVICE, "ListQuarantine", ListQuarantine, Page[QuarantinedReading])
REPLAY_QUARANTINE = Operation(SERVICE, "ReplayQuarantine", ReplayQuarantine, QuarantineOutcome)
DISCARD_QUARANTINE = Operation(SERVICE, "DiscardQuarantine", DiscardQuarantine, QuarantineOutcome)


# --- a device's telemetry health (for ``/api/v1/devices/{id}/health``) ------------------


class GetTelemetryHealth(Request, kw_only=True, frozen=True):
    device_id: UUID


class TelemetryHealth(Contract, kw_only=True, frozen=True):
    """What ingest saw of a device's numbering: the highest ``seq``, how many numbers it
    skipped in all, how often it started counting again, and its quarantined readings."""

    device_id: UUID
    last_seq: int | None = None
    seq_gaps: int = 0
    seq_resets: int = 0
    quarantined: int = 0
    updated_at: datetime | None = None


GET_TELEMETRY_HEALTH = Operation(SERVICE, "GetTelemetryHealth", GetTelemetryHealth, TelemetryHealth)


# --- exports' chunks (decision 65) --------------------------------------------------------

# Rows per ``StreamReadings`` chunk: 12,000 numeric readings are at most ~0.75 MB of JSON
# (a timestamp of 29 bytes, a number of at most 24), under nats-server's 1 MiB message
# limit; a chunk with text values is cut shorter by its bytes (``MAX_CHUNK_BYTES``).
MAX_CHUNK_ROWS = 12_000
MAX_CHUNK_BYTES = 700_000


class StreamReadings(Request, kw_only=True, frozen=True):
    """For the exports service: one device's readings in ``[from, to)`` in ``(ts, sensor)``
    order, after the row ``(afterTs, afterSensor)`` of the previous chunk (keyset: each chunk
    is a range scan of the ``(device_id, ts)`` index). A device that is not the tenant's
    simply has none."""

    device_id: UUID
    from_: Instant = msgspec.field(name="from")
    to: Instant
    after_ts: Instant | None = None
    after_sensor: str | None = None
    limit: Annotated[int, msgspec.Meta(ge=1, le=MAX_CHUNK_ROWS)] = MAX_CHUNK_ROWS
    estimate: bool = False  # also answer the planner's estimate of the rows in the range


class ReadingsChunk(Contract, kw_only=True, frozen=True):
    """Columns, not rows (a fraction of the bytes and of the decoding): ``sensorIndex[i]`` is
    row i's index into ``sensors``; ``ts`` is RFC 3339 UTC with microseconds; ``next`` is
    false on the last chunk. ``lastTs``/``lastSensor`` name the cursor for the next chunk."""

    sensors: list[str]
    sensor_index: list[int]
    ts: list[str]
    value: list[float | int | bool | str]
    next: bool
    last_ts: datetime | None = None
    last_sensor: str | None = None
    estimate: int | None = None


STREAM_READINGS = Operation(SERVICE, "StreamReadings", StreamReadings, ReadingsChunk)
