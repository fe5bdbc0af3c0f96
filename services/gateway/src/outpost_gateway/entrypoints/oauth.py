"""OAuth2 clients (management, under /api/v1) and the token endpoint (at the root)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import msgspec
from litestar import Request, Response, delete, get, post
from litestar.params import FromPath, JSONBody

from outpost_contracts.errors import ErrorType, OutpostError
from outpost_contracts.identity import (
    CREATE_OAUTH_CLIENT,
    DELETE_OAUTH_CLIENT,
    ISSUE_CLIENT_TOKEN,
    LIST_OAUTH_CLIENTS,
    ROTATE_OAUTH_CLIENT_SECRET,
    CreateOAuthClient,
    DeleteOAuthClient,
    IssueClientToken,
    OAuthClientIssued,
    OAuthClientView,
    RotateOAuthClientSecret,
)
from outpost_gateway.domain.oauth import (
    OAuthError,
    invalid_client,
    invalid_request,
    invalid_scope,
    parse_token_request,
)
from outpost_gateway.domain.public_throttle import PublicRoute
from outpost_gateway.entrypoints.params import Listing
from outpost_gateway.entrypoints.public import anonymous_context, failed, limit_account
from outpost_gateway.entrypoints.rendering import ListOf, fetch_list, resource_of
from outpost_gateway.entrypoints.security import BackendDep, Ctx, gateway_state

Req = Request[Any, Any, Any]

OAUTH_CLIENT = resource_of(OAuthClientView)
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


@post("/api/v1/oauth-clients", tags=["oauth-clients"])
async def create_oauth_client(
    data: JSONBody[CreateOAuthClient], ctx: Ctx, backend: BackendDep
) -> Response[OAuthClientIssued]:
    issued = await backend.call(CREATE_OAUTH_CLIENT, ctx, data)
    return Response(issued, status_code=201, headers=NO_STORE)


@get("/api/v1/oauth-clients", tags=["oauth-clients"])
async def list_oauth_clients(
    ctx: Ctx,
    backend: BackendDep,
    listing: Listing,
) -> ListOf[OAuthClientView]:
    return await fetch_list(listing, backend, ctx, LIST_OAUTH_CLIENTS, OAUTH_CLIENT)


@post("/api/v1/oauth-clients/{id:uuid}/rotate-secret", tags=["oauth-clients"], status_code=200)
async def rotate_oauth_client_secret(
    id: FromPath[UUID], ctx: Ctx, backend: BackendDep
) -> Response[OAuthClientIssued]:
    issued = await backend.call(ROTATE_OAUTH_CLIENT_SECRET, ctx, RotateOAuthClientSecret(id=id))
    return Response(issued, status_code=200, headers=NO_STORE)


@delete("/api/v1/oauth-clients/{id:uuid}", tags=["oauth-clients"])
async def delete_oauth_client(id: FromPath[UUID], ctx: Ctx, backend: BackendDep) -> None:
    await backend.call(DELETE_OAUTH_CLIENT, ctx, DeleteOAuthClient(id=id))


def _oauth_response(body: dict[str, Any], status: int, headers: dict[str, str]) -> Response[bytes]:
    return Response(
        msgspec.json.encode(body),
        status_code=status,
        media_type="application/json",
        headers=headers,
    )


def _from_service(error: OutpostError) -> OAuthError:
    if error.type is ErrorType.INVALID_AUTH:
        return invalid_client()
    if error.type is ErrorType.VALIDATION_ERROR:
        return invalid_scope("the client may not have the requested scope")
    if error.type is ErrorType.SERVICE_UNAVAILABLE:
        return OAuthError("temporarily_unavailable", "try again shortly", 503)
    if error.status < 500:
        return invalid_request(str(error))
    return OAuthError("server_error", "the token could not be issued", 500)


@post("/auth/oauth/token", tags=["auth"], status_code=200)
async def token(request: Req) -> Response[bytes]:
    """The client-credentials grant (RFC 6749 §4.4). Errors are RFC 6749 §5.2 bodies; a
    429 from the public-route limits (decision 75) is the API's error model."""
    try:
        grant = parse_token_request(
            request.headers.get("content-type"),
            await request.body(),
            request.headers.get("authorization"),
        )
    except OAuthError as error:
        return _oauth_response(error.body(), error.status, error.headers())
    client_id = grant.client_id[:256]
    account = await limit_account(request, PublicRoute.OAUTH_TOKEN, client_id)
    try:
        issued = await gateway_state(request).backend.call(
            ISSUE_CLIENT_TOKEN,
            anonymous_context(request),
            IssueClientToken(
                client_id=client_id,
                client_secret=grant.client_secret[:256],
                scope=grant.scope,
            ),
        )
    except OutpostError as service_error:
        await failed(request, PublicRoute.OAUTH_TOKEN, account, service_error)
        mapped = _from_service(service_error)
        return _oauth_response(mapped.body(), mapped.status, mapped.headers())
    return _oauth_response(
        {
            "access_token": issued.access_token,
            "token_type": issued.token_type,
            "expires_in": issued.expires_in,
            "scope": issued.scope,
        },
        200,
        dict(NO_STORE),
    )


ROUTES = [
    create_oauth_client,
    list_oauth_clients,
    rotate_oauth_client_secret,
    delete_oauth_client,
    token,
]
