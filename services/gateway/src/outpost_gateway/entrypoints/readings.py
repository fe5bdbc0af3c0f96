"""Reading routes: queries, and HTTP batch ingest (decision 59)."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

import msgspec
from litestar import Request, get, post
from litestar.params import JSONBody, QueryParameter

from outpost_contracts.readings import (
    INGEST_READINGS,
    LIST_READINGS,
    MAX_BATCH_READINGS,
    BatchOutcome,
    IngestReadings,
    ListReadings,
    ReadingsBatch,
    ReadingView,
)
from outpost_gateway.domain.query.typed import parse_typed_query
from outpost_gateway.entrypoints.params import DEFAULT, After, Limit, Order
from outpost_gateway.entrypoints.rendering import ListOf, render_page
from outpost_gateway.entrypoints.security import BackendDep, Ctx

Req = Request[Any, Any, Any]
TIMESTAMP = "RFC 3339 UTC, or the truncated form 20161130T162512Z"


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
    summary="Send readings of this organization's devices over HTTP",
    description=(
        f"At most {MAX_BATCH_READINGS:,} readings per request (more is a `validation_error`"
        " naming `readings`; a body over the gateway's size limit is 413). Each item is"
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


ROUTES = [list_readings, ingest_readings]
