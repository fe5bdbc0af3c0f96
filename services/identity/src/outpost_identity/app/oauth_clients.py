"""The OAuth client aggregate's use cases and the client-credentials grant."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from outpost_contracts import identity as api
from outpost_contracts.base import Empty
from outpost_contracts.envelope import PLATFORM_ORG_ID, PrincipalKind, RequestContext
from outpost_contracts.errors import (
    AccessDenied,
    ErrorType,
    NotFound,
    OutpostError,
    validation_error,
)
from outpost_contracts.query import Page
from outpost_contracts.tokens import CLIENT_TOKEN_TYPE
from outpost_identity.adapters import signing
from outpost_identity.app.deps import Deps, require_active_org, vault
from outpost_identity.app.signing_keys import active_secret
from outpost_identity.domain import oauth_clients
from outpost_kit import ids
from outpost_kit.aggregate import Aggregate

OAUTH_CLIENTS = Aggregate(oauth_clients.STREAM_TYPE, oauth_clients.decide, oauth_clients.evolve)


def _require_org_credential(ctx: RequestContext) -> None:
    if ctx.org_id == PLATFORM_ORG_ID:
        raise AccessDenied("OAuth clients belong to an organization: name it with X-Organization")


def _client_issued(
    client_uuid: UUID, name: str, state: oauth_clients.OAuthClient, secret: str, at: datetime
) -> api.OAuthClientIssued:
    return api.OAuthClientIssued(
        id=client_uuid,
        name=name,
        client_id=state.client_id,
        client_secret=secret,
        scopes=list(state.scopes),
        created_at=at,
    )


async def create_oauth_client(
    deps: Deps, ctx: RequestContext, cmd: api.CreateOAuthClient
) -> api.OAuthClientIssued:
    _require_org_credential(ctx)
    granted = ("*",) if ctx.principal.kind is PrincipalKind.OPERATOR else ctx.principal.scopes
    client_uuid = ids.new_id()
    secret = signing.new_client_secret()
    async with deps.uow(ctx.org_id) as tx:
        await require_active_org(tx, ctx.org_id)
        state, envelopes = await OAUTH_CLIENTS.execute(
            tx,
            ctx,
            stream_id=client_uuid,
            org_id=ctx.org_id,
            command=oauth_clients.RegisterClient(
                name=cmd.name,
                client_id=signing.new_client_id(ctx.org_id, client_uuid),
                secret_hash=signing.hash_client_secret(secret),
                scopes=tuple(cmd.scopes),
                granted=tuple(granted),
                created_by=ctx.principal.id,
            ),
        )
        await tx.commit()
    assert state is not None
    return _client_issued(client_uuid, cmd.name, state, secret, envelopes[0].occurred_at)


async def list_oauth_clients(
    deps: Deps, ctx: RequestContext, q: api.ListOAuthClients
) -> Page[api.OAuthClientView]:
    async with deps.uow(ctx.org_id) as tx:
        return await tx.oauth_clients(q.query)


async def rotate_oauth_client_secret(
    deps: Deps, ctx: RequestContext, cmd: api.RotateOAuthClientSecret
) -> api.OAuthClientIssued:
    secret = signing.new_client_secret()
    async with deps.uow(ctx.org_id) as tx:
        record = await tx.oauth_client(cmd.id)
        if record is None:
            raise NotFound("no such OAuth client")
        state, _ = await OAUTH_CLIENTS.execute(
            tx,
            ctx,
            stream_id=cmd.id,
            org_id=ctx.org_id,
            command=oauth_clients.RotateSecret(secret_hash=signing.hash_client_secret(secret)),
        )
        await tx.commit()
    assert state is not None
    return _client_issued(cmd.id, record.name, state, secret, record.created_at)


async def delete_oauth_client(deps: Deps, ctx: RequestContext, cmd: api.DeleteOAuthClient) -> Empty:
    async with deps.uow(ctx.org_id) as tx:
        state, _ = await OAUTH_CLIENTS.load(tx, cmd.id)
        if state is None or state.deleted:
            raise NotFound("no such OAuth client")
        await OAUTH_CLIENTS.execute(
            tx, ctx, stream_id=cmd.id, org_id=ctx.org_id, command=oauth_clients.DeleteClient()
        )
        await tx.commit()
    return Empty()


def _invalid_client() -> OutpostError:
    # The gateway answers this as RFC 6749 ``invalid_client`` (401).
    return OutpostError("client authentication failed", type=ErrorType.INVALID_AUTH)


async def issue_client_token(
    deps: Deps, ctx: RequestContext, cmd: api.IssueClientToken
) -> api.ClientTokenIssued:
    """The client-credentials grant. Unknown client, wrong secret, deleted client and a
    suspended organization are all the same ``invalid_client``."""
    keys = vault(deps)
    presented = signing.hash_client_secret(cmd.client_secret)
    parsed = signing.parse_client_id(cmd.client_id)
    if parsed is None:
        oauth_clients.verify_secret(None, presented)  # the same constant-time work
        raise _invalid_client()
    org_id, client_uuid = parsed
    now = ids.now()
    async with deps.uow(org_id) as tx:
        state, _ = await OAUTH_CLIENTS.load(tx, client_uuid)
        if state is not None and state.client_id != cmd.client_id:
            state = None
        if not oauth_clients.verify_secret(state, presented):
            raise _invalid_client()
        assert state is not None
        if await tx.organization_status(org_id) is not api.OrganizationStatus.ACTIVE:
            raise _invalid_client()
        scopes = oauth_clients.granted_scopes(state, cmd.scope)
        if scopes is None:
            # The gateway answers a validation error on ``scope`` as ``invalid_scope``.
            raise validation_error("scope", "the client may not have the requested scope")
        key = await active_secret(tx, now)
        expires_at = min(now + deps.access_ttl, key.not_after)
        token = signing.sign_client_token(
            keys.open(key.private_key_enc),
            key.kid,
            client_uuid=client_uuid,
            client_id=state.client_id,
            org_id=org_id,
            scopes=scopes,
            issued_at=now,
            expires_at=expires_at,
        )
    return api.ClientTokenIssued(
        access_token=token,
        token_type=CLIENT_TOKEN_TYPE,
        expires_in=max(0, int((expires_at - now).total_seconds())),
        scope=" ".join(scopes),
    )
