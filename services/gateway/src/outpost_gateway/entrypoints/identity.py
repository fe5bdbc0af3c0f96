"""Identity routes: organizations (operator), API keys, users, sessions and an integration's
credential rotation (its five routes: the group /api/v1/integrations)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from litestar import Request, Response, post
from litestar.params import FromPath, JSONBody

from outpost_contracts.identity import (
    LOGIN,
    LOGOUT,
    REFRESH,
    REINSTATE_ORGANIZATION,
    ROTATE_INTEGRATION_CREDENTIAL,
    SUSPEND_ORGANIZATION,
    IntegrationIssued,
    Login,
    Logout,
    OrganizationView,
    Refresh,
    ReinstateOrganizationById,
    RotateIntegrationCredential,
    SuspendOrganizationById,
    TokenIssued,
)
from outpost_gateway.domain.public_throttle import PublicRoute
from outpost_gateway.entrypoints.public import call_public
from outpost_gateway.entrypoints.security import BackendDep, Ctx

Req = Request[Any, Any, Any]


@post(
    "/api/v1/admin/organizations/{id:uuid}/suspend",
    tags=["organizations"],
    status_code=200,
    summary="Suspend an organization",
    description="Every credential of the organization is refused (403) within seconds.",
)
async def suspend_organization(
    id: FromPath[UUID], ctx: Ctx, backend: BackendDep
) -> OrganizationView:
    return await backend.call(SUSPEND_ORGANIZATION, ctx, SuspendOrganizationById(id=id))


@post(
    "/api/v1/admin/organizations/{id:uuid}/reinstate",
    tags=["organizations"],
    status_code=200,
    summary="Lift an organization's suspension",
    description="Its credentials, devices, telemetry and notifications work again within"
    " seconds; reinstating an active organization changes nothing.",
)
async def reinstate_organization(
    id: FromPath[UUID], ctx: Ctx, backend: BackendDep
) -> OrganizationView:
    return await backend.call(REINSTATE_ORGANIZATION, ctx, ReinstateOrganizationById(id=id))


@post("/api/v1/auth/login", tags=["auth"], status_code=200)
async def login(request: Req, data: JSONBody[Login]) -> TokenIssued:
    return await call_public(request, PublicRoute.LOGIN, data.email, LOGIN, data)


@post("/api/v1/auth/refresh", tags=["auth"], status_code=200)
async def refresh(request: Req, data: JSONBody[Refresh]) -> TokenIssued:
    return await call_public(request, PublicRoute.REFRESH, data.refresh_token, REFRESH, data)


@post("/api/v1/auth/logout", tags=["auth"], status_code=204)
async def logout(ctx: Ctx, backend: BackendDep) -> None:
    await backend.call(LOGOUT, ctx, Logout())


@post(
    "/api/v1/integrations/{id:uuid}/rotate",
    tags=["integrations"],
    status_code=200,
    summary="Rotate an integration's broker password",
    description="Answers the new password, once; the previous one is refused from now on and"
    " the broker connections made with it are closed within seconds.",
)
async def rotate_integration(
    id: FromPath[UUID], ctx: Ctx, backend: BackendDep
) -> Response[IntegrationIssued]:
    issued = await backend.call(
        ROTATE_INTEGRATION_CREDENTIAL, ctx, RotateIntegrationCredential(id=id)
    )
    return Response(issued, status_code=200, headers={"Cache-Control": "no-store"})


ROUTES = [
    suspend_organization,
    reinstate_organization,
    login,
    refresh,
    logout,
    rotate_integration,
]
