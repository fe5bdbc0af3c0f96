"""Reading routes: queries, and HTTP batch ingest (decision 59)."""

from __future__ import annotations

from typing import Annotated, Any, Literal, TypeVar
from uuid import UUID

import msgspec
from litestar import Request, get, post
from litestar.params import JSONBody, QueryParameter

from outpost_contracts.errors import validation_error
from outpost_contracts.readings import (
    AGGREGATE_FUNCTIONS,
    DEFAULT_AGGREGATE_LIMIT,
    DISCARD_QUARANTINE,
    GET_AGGREGATES,
    GET_LATEST,
    GET_STATS,
    INGEST_READINGS,
    LIST_QUARANTINE,
    LIST_READINGS,
    MAX_AGGREGATE_LIMIT,
    MAX_BATCH_READINGS,
    MAX_BUCKETS,
    MAX_MINUTE_SOURCE_DAYS,
    MAX_QUERY_DEVICES,
    MAX_RAW_DEVICE_DAYS,
    MAX_SOURCE_ROWS,
    MAX_STATS_DAYS,
    MAX_STATS_DEVICE_DAYS,
    REPLAY_QUARANTINE,
    AggregateView,
    BatchOutcome,
    DiscardQuarantine,
    GetAggregates,
    GetLatest,
    GetStats,
    IngestReadings,
    ListReadings,
    QuarantinedReading,
    QuarantineOutcome,
    ReadingsBatch,
    ReadingView,
    ReplayQuarantine,
    StatsView,
)
from outpost_gateway.domain.query.typed import parse_typed_query
from outpost_gateway.entrypoints.params import DEFAULT, Limit, Listing, Order
from outpost_gateway.entrypoints.rendering import ListOf, fetch_list, render_page, resource_of
from outpost_gateway.entrypoints.security import BackendDep, Ctx

# exactly one of them on every reading query (docs/api.md, "Reading queries")
DeviceId = Annotated[
    UUID | None,
    QueryParameter(name="deviceId", description="One device (or `groupId`, or `siteId`)"),
]
GroupId = Annotated[
    UUID | None,
    QueryParameter(name="groupId", description="The devices of a device group"),
]
SiteId = Annotated[
    UUID | None,
    QueryParameter(name="siteId", description="The devices at a site"),
]
Sensor = Annotated[str | None, QueryParameter(description="One sensor key; all when absent")]
ReadingsAfter = Annotated[
    str | None, QueryParameter(description="`after` of the previous page (an opaque cursor)")
]
Req = Request[Any, Any, Any]
TIMESTAMP = "RFC 3339 UTC, or the truncated form 20161130T162512Z"
QUARANTINED = resource_of(QuarantinedReading)
ONE_OF = "Exactly one of `deviceId`, `groupId`, `siteId` (a `validation_error` otherwise)."

Q = TypeVar("Q", ListReadings, GetAggregates, GetStats, GetLatest)


def reading_query(request: Req, type_: type[Q]) -> Q:
    """The query parameters as ``type_``, naming exactly one device, group or site (readings
    checks it again; refusing here saves the round trip)."""
    body = parse_typed_query(list(request.query_params.multi_items()), type_)
    if sum(x is not None for x in (body.device_id, body.group_id, body.site_id)) != 1:
        raise validation_error("deviceId", "give exactly one of deviceId, groupId, siteId")
    return body


@get(
    "/api/v1/readings",
    tags=["readings"],
    summary="Raw readings of a device, or of a group's or site's devices",
    description=(
        f"{ONE_OF} Ordered by `ts` (then device and sensor), `order=DESC` for newest first;"
        " pages of `limit` followed by `after`. With `groupId` or `siteId`, `from` and `to`"
        f" are required and devices x days may not exceed {MAX_RAW_DEVICE_DAYS} (a"
        " `validation_error` beyond: ask for aggregates instead)."
    ),
)
async def list_readings(
    request: Req,
    ctx: Ctx,
    backend: BackendDep,
    device_id: DeviceId = None,
    group_id: GroupId = None,
    site_id: SiteId = None,
    sensor: Sensor = None,
    # one QueryParameter each: Litestar reads only the innermost of nested ones, so an alias
    # beside a shared annotation was lost (the document said `from_`, which is refused)
    from_: Annotated[str | None, QueryParameter(name="from", description=TIMESTAMP)] = None,
    to: Annotated[str | None, QueryParameter(description=TIMESTAMP)] = None,
    limit: Limit = DEFAULT,
    after: ReadingsAfter = None,
    order: Order = "ASC",
) -> ListOf[ReadingView]:
    body = reading_query(request, ListReadings)
    page = await backend.call(LIST_READINGS, ctx, body)
    return render_page(page, include_total=False)


@get(
    "/api/v1/readings/aggregated",
    tags=["readings"],
    summary="Numeric readings aggregated per time bucket, per device and sensor",
    description=(
        f"{ONE_OF} Buckets of `interval` counted from local midnight in `timezone` (an IANA"
        " name, default UTC; daylight-saving changes give 23- and 25-hour days and two 02:00"
        " hours, each bucket named by the instant `ts` it starts at). `[from, to)` is widened"
        " to whole buckets. `fn`: comma-separated functions among"
        f" {', '.join(AGGREGATE_FUNCTIONS)} (default avg); only those are in each item."
        " Numbers are aggregated, booleans as 0/1, text is not. Ordered by `ts`, device,"
        f" sensor; pages of `limit` (1-{MAX_AGGREGATE_LIMIT:,}, default"
        f" {DEFAULT_AGGREGATE_LIMIT}) followed by `after`. Limits (a `validation_error`"
        f" beyond): at most {MAX_BUCKETS:,} buckets between `from` and `to`; answers"
        " served from per-minute rollups (1m, 5m, 15m, and 1h/1d in a zone whose offset is"
        f" not whole hours) cover at most {MAX_MINUTE_SOURCE_DAYS} days; devices x rollup"
        f" rows read at most {MAX_SOURCE_ROWS:,}; a group or site at most"
        f" {MAX_QUERY_DEVICES:,} devices."
    ),
)
async def aggregated_readings(
    request: Req,
    ctx: Ctx,
    backend: BackendDep,
    from_: Annotated[str, QueryParameter(name="from", description=TIMESTAMP)],
    to: Annotated[str, QueryParameter(description=TIMESTAMP)],
    interval: Annotated[
        Literal["1m", "5m", "15m", "1h", "1d"], QueryParameter(description="Bucket length")
    ],
    device_id: DeviceId = None,
    group_id: GroupId = None,
    site_id: SiteId = None,
    sensor: Sensor = None,
    fn: Annotated[
        str | None,
        QueryParameter(description="Functions, e.g. `avg,min,max` (default `avg`)"),
    ] = None,
    timezone: Annotated[
        str | None, QueryParameter(description="IANA time zone, e.g. `Europe/Paris`")
    ] = None,
    limit: Annotated[
        int,
        QueryParameter(
            ge=1, le=MAX_AGGREGATE_LIMIT, description=f"Page size, 1-{MAX_AGGREGATE_LIMIT}"
        ),
    ] = DEFAULT_AGGREGATE_LIMIT,
    after: ReadingsAfter = None,
) -> ListOf[AggregateView]:
    body = reading_query(request, GetAggregates)
    page = await backend.call(GET_AGGREGATES, ctx, body)
    return render_page(page, include_total=False)


@get(
    "/api/v1/readings/stats",
    tags=["readings"],
    summary="Statistics of numeric readings over a range, per device and sensor",
    description=(
        f"{ONE_OF} Over `[from, to)`: `count`, `min`, `max`, `avg`, `stddev` (the sample"
        " standard deviation, null for one reading), `p50`, `p95`, `p99` (continuous"
        " percentiles: linear interpolation between the closest ranks, as Postgres'"
        " `percentile_cont`). Booleans count as 0/1, text is left out. Ordered by device and"
        " sensor, pages of `limit` followed by `after`. Computed from raw readings, so"
        f" bounded: at most {MAX_STATS_DAYS} days between `from` and `to`, and"
        f" devices x days at most {MAX_STATS_DEVICE_DAYS:,} (a `validation_error` beyond)."
    ),
)
async def readings_stats(
    request: Req,
    ctx: Ctx,
    backend: BackendDep,
    from_: Annotated[str, QueryParameter(name="from", description=TIMESTAMP)],
    to: Annotated[str, QueryParameter(description=TIMESTAMP)],
    device_id: DeviceId = None,
    group_id: GroupId = None,
    site_id: SiteId = None,
    sensor: Sensor = None,
    limit: Limit = DEFAULT,
    after: ReadingsAfter = None,
) -> ListOf[StatsView]:
    body = reading_query(request, GetStats)
    page = await backend.call(GET_STATS, ctx, body)
    return render_page(page, include_total=False)


@get(
    "/api/v1/readings/latest",
    tags=["readings"],
    summary="The newest reading of each sensor of a device, or of a group's or site's devices",
    description=(
        f"{ONE_OF} One item per device and sensor readings knows of (declared, or declared"
        " by a first reading), ordered by device and sensor; pages of `limit` followed by"
        " `after`."
    ),
)
async def latest_readings(
    request: Req,
    ctx: Ctx,
    backend: BackendDep,
    device_id: DeviceId = None,
    group_id: GroupId = None,
    site_id: SiteId = None,
    sensor: Sensor = None,
    limit: Limit = DEFAULT,
    after: ReadingsAfter = None,
) -> ListOf[ReadingView]:
    body = reading_query(request, GetLatest)
    page = await backend.call(GET_LATEST, ctx, body)
    return render_page(page, include_total=False)


# The batch route's own body limit (413 beyond): 10,000 readings of typical JSON are ~1.1 MB,
# over the gateway's default for every other route (``OUTPOST_GATEWAY_MAX_BODY_BYTES``).
BATCH_MAX_BODY_BYTES = 4 * 1024 * 1024

# A slice of a batch sent to readings in one broker message stays under this many bytes of
# items (the broker's message limit is 1 MiB; the request envelope needs the rest).
SLICE_BYTES = 512 * 1024


def slices(items: list[dict[str, Any]]) -> list[tuple[int, list[dict[str, Any]]]]:
    """The batch cut into (first index, items) slices of at most ``SLICE_BYTES`` of JSON."""
    out: list[tuple[int, list[dict[str, Any]]]] = []
    start, size = 0, 0
    for i, item in enumerate(items):
        n = len(msgspec.json.encode(item)) + 1
        if i > start and size + n > SLICE_BYTES:
            out.append((start, items[start:i]))
            start, size = i, 0
        size += n
    if start < len(items):
        out.append((start, items[start:]))
    return out


@post(
    "/api/v1/readings/batch",
    tags=["readings"],
    status_code=202,
    request_max_body_size=BATCH_MAX_BODY_BYTES,
    summary="Send readings of this organization's devices over HTTP",
    description=(
        f"At most {MAX_BATCH_READINGS:,} readings per request (more is a `validation_error`"
        f" naming `readings`; a body over {BATCH_MAX_BODY_BYTES // (1024 * 1024)} MiB is"
        " 413). Each item is"
        " `{deviceId, sensor, ts, value}` (`ts` required, RFC 3339 with an offset) and is"
        " checked on its own: a malformed item, a device that is not this organization's or"
        " is decommissioned, an unknown sensor (when the organization does not auto-declare"
        " sensors), a value of the wrong type or outside the sensor's valid range, a time"
        " too far in the future or past, or a second reading of one device, sensor and"
        " instant is listed in `rejected` with its index and a reason code; the others are"
        " `accepted`: they are in the telemetry stream and become readable within moments."
        " A retried request stores nothing twice."
    ),
)
async def ingest_readings(
    data: JSONBody[ReadingsBatch], ctx: Ctx, backend: BackendDep
) -> BatchOutcome:
    accepted, rejected = 0, []
    for first, items in slices(data.readings):
        outcome = await backend.call(
            INGEST_READINGS, ctx, IngestReadings(readings=items, first_index=first)
        )
        accepted += outcome.accepted
        rejected.extend(outcome.rejected)
    return BatchOutcome(accepted=accepted, rejected=rejected)


# --- the quarantine (decision 58): an organization's refused readings --------------------


@get(
    "/api/v1/admin/quarantine",
    tags=["readings"],
    summary="Readings (or whole telemetry messages) refused by validation",
    description=(
        "The organization's quarantine with the collection conventions: oldest first"
        " (`order=DESC` for newest first), pages of `limit` followed by `after` (the last"
        " id of a page), `include=totalCount`, field filters and OData on `id`,"
        " `deviceId`, `sensor`, `ts`, `reason` (a code such as `unknown_sensor`,"
        " `out_of_range`), `source`, `subject`, `streamSeq`, `readingIndex`, `receivedAt`."
        " `readingIndex` is the reading's place in its message, -1 for a whole message;"
        " `payload` is what was sent, as text."
    ),
)
async def list_quarantine(
    ctx: Ctx,
    backend: BackendDep,
    listing: Listing,
) -> ListOf[QuarantinedReading]:
    return await fetch_list(listing, backend, ctx, LIST_QUARANTINE, QUARANTINED)


@post(
    "/api/v1/admin/quarantine/replay",
    tags=["readings"],
    status_code=200,
    summary="Validate quarantined readings again and store those that now pass",
    description=(
        "By `ids` (at most 1,000), e.g. after the sensor was declared or its range widened."
        " Each is checked against what readings knows now, with its original arrival time:"
        " `stored` left the quarantine into the readings, `stillRefused` stay (with their"
        " current reason), `notFound` ids are not in this organization's quarantine."
    ),
)
async def replay_quarantine(
    data: JSONBody[ReplayQuarantine], ctx: Ctx, backend: BackendDep
) -> QuarantineOutcome:
    return await backend.call(REPLAY_QUARANTINE, ctx, data)


@post(
    "/api/v1/admin/quarantine/discard",
    tags=["readings"],
    status_code=200,
    summary="Remove quarantined readings for good",
    description="By `ids` (at most 1,000); `notFound` counts ids not in the quarantine.",
)
async def discard_quarantine(
    data: JSONBody[DiscardQuarantine], ctx: Ctx, backend: BackendDep
) -> QuarantineOutcome:
    return await backend.call(DISCARD_QUARANTINE, ctx, data)


ROUTES = [
    list_readings,
    aggregated_readings,
    readings_stats,
    latest_readings,
    ingest_readings,
    list_quarantine,
    replay_quarantine,
    discard_quarantine,
]
