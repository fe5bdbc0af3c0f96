"""Identity routes: organizations (operator) and API keys."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from litestar import Request, delete, get, post
from litestar.params import FromPath, JSONBody

from outpost_contracts.identity import (
    CREATE_API_KEY,
    CREATE_ORGANIZATION,
    GET_ORGANIZATION,
    LIST_API_KEYS,
    LIST_ORGANIZATIONS,
    REVOKE_API_KEY,
    ApiKeyIssued,
    ApiKeyView,
    CreateApiKey,
    CreateOrganization,
    GetOrganization,
    ListApiKeys,
    ListOrganizations,
    OrganizationView,
    RevokeApiKey,
)
from outpost_gateway.domain.query import parse_list_request
from outpost_gateway.entrypoints.params import DEFAULT, After, Include, Limit, Order
from outpost_gateway.entrypoints.rendering import ListOf, render_list, resource_of
from outpost_gateway.entrypoints.security import BackendDep, Ctx

Req = Request[Any, Any, Any]

ORGANIZATION = resource_of(OrganizationView)
API_KEY = resource_of(ApiKeyView)


@post("/api/v1/admin/organizations", tags=["organizations"])
async def create_organization(
    data: JSONBody[CreateOrganization], ctx: Ctx, backend: BackendDep
) -> OrganizationView:
    return await backend.call(CREATE_ORGANIZATION, ctx, data)


@get("/api/v1/admin/organizations", tags=["organizations"])
async def list_organizations(
    request: Req,
    ctx: Ctx,
    backend: BackendDep,
    limit: Limit = DEFAULT,
    after: After = None,
    order: Order = "ASC",
    include: Include = None,
) -> ListOf[OrganizationView]:
    query, shape = parse_list_request(list(request.query_params.multi_items()), ORGANIZATION)
    page = await backend.call(LIST_ORGANIZATIONS, ctx, ListOrganizations(query=query))
    return render_list(page, query, shape)


@get("/api/v1/admin/organizations/{id:uuid}", tags=["organizations"])
async def get_organization(id: FromPath[UUID], ctx: Ctx, backend: BackendDep) -> OrganizationView:
    return await backend.call(GET_ORGANIZATION, ctx, GetOrganization(id=id))


@post("/api/v1/api-keys", tags=["api-keys"])
async def create_api_key(
    data: JSONBody[CreateApiKey], ctx: Ctx, backend: BackendDep
) -> ApiKeyIssued:
    return await backend.call(CREATE_API_KEY, ctx, data)


@get("/api/v1/api-keys", tags=["api-keys"])
async def list_api_keys(
    request: Req,
    ctx: Ctx,
    backend: BackendDep,
    limit: Limit = DEFAULT,
    after: After = None,
    order: Order = "ASC",
    include: Include = None,
) -> ListOf[ApiKeyView]:
    query, shape = parse_list_request(list(request.query_params.multi_items()), API_KEY)
    page = await backend.call(LIST_API_KEYS, ctx, ListApiKeys(query=query))
    return render_list(page, query, shape)


@delete("/api/v1/api-keys/{id:uuid}", tags=["api-keys"])
async def revoke_api_key(id: FromPath[UUID], ctx: Ctx, backend: BackendDep) -> None:
    await backend.call(REVOKE_API_KEY, ctx, RevokeApiKey(id=id))


ROUTES = [
    create_organization,
    list_organizations,
    get_organization,
    create_api_key,
    list_api_keys,
    revoke_api_key,
]
