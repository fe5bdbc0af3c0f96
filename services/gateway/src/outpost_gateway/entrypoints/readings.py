"""Reading routes: queries, and HTTP batch ingest (decision 59)."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

import msgspec
from litestar import Request, get, post
from litestar.params import JSONBody, QueryParameter

from outpost_contracts.readings import (
    DISCARD_QUARANTINE,
    INGEST_READINGS,
    LIST_QUARANTINE,
    LIST_READINGS,
    MAX_BATCH_READINGS,
    REPLAY_QUARANTINE,
    BatchOutcome,
    DiscardQuarantine,
    IngestReadings,
    ListReadings,
    QuarantinedReading,
    QuarantineOutcome,
    ReadingsBatch,
    ReadingView,
    ReplayQuarantine,
)
from outpost_gateway.domain.query.typed import parse_typed_query
from outpost_gateway.entrypoints.params import DEFAULT, After, Include, Limit, Order
from outpost_gateway.entrypoints.rendering import ListOf, fetch_list, render_page, resource_of
from outpost_gateway.entrypoints.security import BackendDep, Ctx

Req = Request[Any, Any, Any]
TIMESTAMP = "RFC 3339 UTC, or the truncated form 20161130T162512Z"
QUARANTINED = resource_of(QuarantinedReading)


@get("/api/v1/readings", tags=["readings"])
async def list_readings(
    request: Req,
    ctx: Ctx,
    backend: BackendDep,
    device_id: Annotated[UUID, QueryParameter(name="deviceId")],
    sensor: Annotated[str | None, QueryParameter()] = None,
    # one QueryParameter each: Litestar reads only the innermost of nested ones, so an alias
    # beside a shared annotation was lost (the document said `from_`, which is refused)
    from_: Annotated[str | None, QueryParameter(name="from", description=TIMESTAMP)] = None,
    to: Annotated[str | None, QueryParameter(description=TIMESTAMP)] = None,
    limit: Limit = DEFAULT,
    after: After = None,
    order: Order = "ASC",
) -> ListOf[ReadingView]:
    body = parse_typed_query(list(request.query_params.multi_items()), ListReadings)
    page = await backend.call(LIST_READINGS, ctx, body)
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
    request: Req,
    ctx: Ctx,
    backend: BackendDep,
    limit: Limit = DEFAULT,
    after: After = None,
    order: Order = "ASC",
    include: Include = None,
) -> ListOf[QuarantinedReading]:
    params = list(request.query_params.multi_items())
    return await fetch_list(params, backend, ctx, LIST_QUARANTINE, QUARANTINED)


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


ROUTES = [list_readings, ingest_readings, list_quarantine, replay_quarantine, discard_quarantine]
