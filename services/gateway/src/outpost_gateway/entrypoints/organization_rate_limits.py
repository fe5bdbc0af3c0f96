"""An organization's rate limits, for the platform operator (docs/api.md "Rate limits":
"configurable per organization"). The gateway owns them (its schema), so these routes are
served here, not by a service; every replica applies a change within its override cache's
lifetime (`OUTPOST_GATEWAY_RATELIMIT_OVERRIDE_TTL_SECONDS`, 30 s), the one that took it at
once."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

import msgspec
from litestar import Request, get, put
from litestar.params import FromPath, JSONBody

from outpost_contracts.base import Contract
from outpost_contracts.base import Request as Body
from outpost_contracts.envelope import PLATFORM_ORG_ID, RequestContext
from outpost_contracts.errors import NotFound, ServiceUnavailable
from outpost_contracts.identity import GET_ORGANIZATION, GetOrganization
from outpost_gateway.domain.ratelimit import Category
from outpost_gateway.entrypoints.security import Ctx, gateway_state

Req = Request[Any, Any, Any]
PerMinute = Annotated[int, msgspec.Meta(ge=1, le=1_000_000_000)]


class RateLimits(Contract, kw_only=True, frozen=True):
    """Requests per minute per credential, by category, and which of them are the
    organization's own (the others are the deployment's defaults)."""

    organization_id: UUID
    single: int
    list: int
    write: int
    overridden: tuple[Category, ...]


class SetRateLimits(Body, kw_only=True, frozen=True):
    """The organization's own limits; a category absent or null takes the default."""

    single: PerMinute | None = None
    list: PerMinute | None = None
    write: PerMinute | None = None


async def _existing(request: Req, ctx: RequestContext, org_id: UUID) -> None:
    state = gateway_state(request)
    if org_id == PLATFORM_ORG_ID:
        raise NotFound("no such organization")
    if not state.cache.organization_exists(org_id):  # maybe created a moment ago: ask
        await state.backend.call(GET_ORGANIZATION, ctx, GetOrganization(id=org_id))


async def _view(request: Req, org_id: UUID) -> RateLimits:
    limiter = gateway_state(request).limiter
    limits = await limiter.limits_for(org_id)
    return RateLimits(
        organization_id=org_id,
        single=limits.single,
        list=limits.list,
        write=limits.write,
        overridden=tuple(await limiter.overridden(org_id)),
    )


@get("/api/v1/admin/organizations/{id:uuid}/rate-limits", tags=["organizations"])
async def get_rate_limits(id: FromPath[UUID], request: Req, ctx: Ctx) -> RateLimits:
    await _existing(request, ctx, id)
    return await _view(request, id)


@put(
    "/api/v1/admin/organizations/{id:uuid}/rate-limits",
    tags=["organizations"],
    summary="Set an organization's rate limits",
)
async def set_rate_limits(
    id: FromPath[UUID], data: JSONBody[SetRateLimits], request: Req, ctx: Ctx
) -> RateLimits:
    await _existing(request, ctx, id)
    limiter = gateway_state(request).limiter
    try:
        await limiter.set_overrides(
            id,
            {
                Category.SINGLE: data.single,
                Category.LIST: data.list,
                Category.WRITE: data.write,
            },
        )
    except RuntimeError as exc:  # a gateway run without the shared store
        raise ServiceUnavailable(str(exc)) from exc
    return await _view(request, id)


ROUTES = [get_rate_limits, set_rate_limits]
