"""Identity routes: organizations (operator), API keys, users and sessions."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from litestar import Request, delete, get, post
from litestar.params import FromPath, JSONBody

from outpost_contracts.identity import (
    CREATE_API_KEY,
    CREATE_ORGANIZATION,
    CREATE_USER,
    GET_ORGANIZATION,
    GET_USER,
    LIST_API_KEYS,
    LIST_ORGANIZATIONS,
    LIST_USERS,
    LOGIN,
    LOGOUT,
    REFRESH,
    REINSTATE_ORGANIZATION,
    REVOKE_API_KEY,
    SUSPEND_ORGANIZATION,
    ApiKeyIssued,
    ApiKeyView,
    CreateApiKey,
    CreateOrganization,
    CreateUser,
    GetOrganization,
    GetUser,
    Login,
    Logout,
    OrganizationView,
    Refresh,
    ReinstateOrganizationById,
    RevokeApiKey,
    SuspendOrganizationById,
    TokenIssued,
    UserView,
)
from outpost_gateway.domain.public_throttle import PublicRoute
from outpost_gateway.domain.query import parse_single_request
from outpost_gateway.entrypoints.params import (
    Listing,
)
from outpost_gateway.entrypoints.public import call_public
from outpost_gateway.entrypoints.rendering import ListOf, fetch_list, render_one, resource_of
from outpost_gateway.entrypoints.security import BackendDep, Ctx

Req = Request[Any, Any, Any]

ORGANIZATION = resource_of(OrganizationView)
API_KEY = resource_of(ApiKeyView)
USER = resource_of(UserView)


@post("/api/v1/admin/organizations", tags=["organizations"])
async def create_organization(
    data: JSONBody[CreateOrganization], ctx: Ctx, backend: BackendDep
) -> OrganizationView:
    return await backend.call(CREATE_ORGANIZATION, ctx, data)


@get("/api/v1/admin/organizations", tags=["organizations"])
async def list_organizations(
    ctx: Ctx,
    backend: BackendDep,
    listing: Listing,
) -> ListOf[OrganizationView]:
    return await fetch_list(listing, backend, ctx, LIST_ORGANIZATIONS, ORGANIZATION)


@get("/api/v1/admin/organizations/{id:uuid}", tags=["organizations"])
async def get_organization(
    id: FromPath[UUID], request: Req, ctx: Ctx, backend: BackendDep
) -> OrganizationView:
    shape = parse_single_request(list(request.query_params.multi_items()), ORGANIZATION)
    view = await backend.call(GET_ORGANIZATION, ctx, GetOrganization(id=id))
    return render_one(view, shape)  # type: ignore[no-any-return]


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


@post("/api/v1/api-keys", tags=["api-keys"])
async def create_api_key(
    data: JSONBody[CreateApiKey], ctx: Ctx, backend: BackendDep
) -> ApiKeyIssued:
    return await backend.call(CREATE_API_KEY, ctx, data)


@get("/api/v1/api-keys", tags=["api-keys"])
async def list_api_keys(
    ctx: Ctx,
    backend: BackendDep,
    listing: Listing,
) -> ListOf[ApiKeyView]:
    return await fetch_list(listing, backend, ctx, LIST_API_KEYS, API_KEY)


@delete("/api/v1/api-keys/{id:uuid}", tags=["api-keys"])
async def revoke_api_key(id: FromPath[UUID], ctx: Ctx, backend: BackendDep) -> None:
    await backend.call(REVOKE_API_KEY, ctx, RevokeApiKey(id=id))


@post("/api/v1/users", tags=["users"])
async def create_user(data: JSONBody[CreateUser], ctx: Ctx, backend: BackendDep) -> UserView:
    return await backend.call(CREATE_USER, ctx, data)


@get("/api/v1/users", tags=["users"])
async def list_users(
    ctx: Ctx,
    backend: BackendDep,
    listing: Listing,
) -> ListOf[UserView]:
    return await fetch_list(listing, backend, ctx, LIST_USERS, USER)


@get("/api/v1/users/{id:uuid}", tags=["users"])
async def get_user(id: FromPath[UUID], request: Req, ctx: Ctx, backend: BackendDep) -> UserView:
    shape = parse_single_request(list(request.query_params.multi_items()), USER)
    view = await backend.call(GET_USER, ctx, GetUser(id=id))
    return render_one(view, shape)  # type: ignore[no-any-return]


@post("/api/v1/auth/login", tags=["auth"], status_code=200)
async def login(request: Req, data: JSONBody[Login]) -> TokenIssued:
    return await call_public(request, PublicRoute.LOGIN, data.email, LOGIN, data)


@post("/api/v1/auth/refresh", tags=["auth"], status_code=200)
async def refresh(request: Req, data: JSONBody[Refresh]) -> TokenIssued:
    return await call_public(request, PublicRoute.REFRESH, data.refresh_token, REFRESH, data)


@post("/api/v1/auth/logout", tags=["auth"], status_code=204)
async def logout(ctx: Ctx, backend: BackendDep) -> None:
    await backend.call(LOGOUT, ctx, Logout())


ROUTES = [
    create_organization,
    list_organizations,
    get_organization,
    suspend_organization,
    reinstate_organization,
    create_api_key,
    list_api_keys,
    revoke_api_key,
    create_user,
    list_users,
    get_user,
    login,
    refresh,
    logout,
]
