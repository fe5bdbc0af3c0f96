"""Reading query routes."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from litestar import Request, get
from litestar.params import QueryParameter

from outpost_contracts.readings import LIST_READINGS, ListReadings, ReadingView
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


ROUTES = [list_readings]
