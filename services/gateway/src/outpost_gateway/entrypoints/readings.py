"""Reading query routes."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from litestar import Request, get
from litestar.params import Parameter

from outpost_contracts.envelope import RequestContext
from outpost_contracts.readings import LIST_READINGS, ListReadings, ReadingView
from outpost_gateway.app.ports import Backend
from outpost_gateway.domain.query.typed import parse_typed_query
from outpost_gateway.entrypoints.params import DEFAULT, After, Limit, Order
from outpost_gateway.entrypoints.rendering import ListOf, render_page

Req = Request[Any, Any, Any]
Timestamp = Annotated[
    str | None,
    Parameter(description="RFC 3339 UTC, or the truncated form 20161130T162512Z"),
]


@get("/api/v1/readings", tags=["readings"])
async def list_readings(
    request: Req,
    ctx: RequestContext,
    backend: Backend,
    device_id: Annotated[UUID, Parameter(query="deviceId")],
    sensor: str | None = None,
    from_: Annotated[Timestamp, Parameter(query="from")] = None,
    to: Timestamp = None,
    limit: Limit = DEFAULT,
    after: After = None,
    order: Order = "ASC",
) -> ListOf[ReadingView]:
    body = parse_typed_query(request.query_params.multi_items(), ListReadings)
    page = await backend.call(LIST_READINGS, ctx, body)
    return render_page(page, include_total=False)


ROUTES = [list_readings]
