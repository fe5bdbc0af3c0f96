"""Platform routes: health, readiness, metrics and the API's documents."""

from __future__ import annotations

from functools import cache
from typing import Any

from litestar import Request, Response, get
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from outpost_contracts.errors import ServiceUnavailable
from outpost_contracts.schemas import json_schemas
from outpost_gateway.entrypoints.security import gateway_state

Req = Request[Any, Any, Any]


@get("/healthz", include_in_schema=False)
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@get("/readyz", include_in_schema=False)
async def readyz(request: Req) -> dict[str, str]:
    failing = gateway_state(request).readiness.failing()
    if failing:
        raise ServiceUnavailable(f"not ready: {', '.join(failing)}")
    return {"status": "ready"}


@get("/metrics", include_in_schema=False)
async def metrics(request: Req) -> Response[bytes]:
    # The app's own registry (HTTP, rate limits) and the process's (the kit's metrics,
    # process and runtime figures); their names do not overlap.
    body = generate_latest(gateway_state(request).metrics.registry) + generate_latest(REGISTRY)
    # The header as prometheus_client spells it: ``media_type`` would have Litestar append a
    # second ``charset`` to a text/ type, a media type Prometheus 3 refuses (decision 77).
    return Response(body, headers={"Content-Type": CONTENT_TYPE_LATEST})


@cache
def _schemas() -> dict[str, Any]:
    return json_schemas()


@get("/api/schemas", include_in_schema=False)
async def schemas() -> dict[str, Any]:
    return _schemas()


ROUTES = [healthz, readyz, metrics, schemas]
