"""Identity's use cases and its handler table."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy.exc import IntegrityError

from outpost_contracts import identity as api
from outpost_contracts.base import Empty
from outpost_contracts.credentials import generate_key, hash_key
from outpost_contracts.envelope import PLATFORM_ORG_ID, PrincipalKind, RequestContext
from outpost_contracts.errors import AccessDenied, Conflict, NotFound
from outpost_contracts.query import Page
from outpost_contracts.rpc import Operation
from outpost_identity.adapters import queries
from outpost_identity.domain import api_keys, organizations
from outpost_kit import aggregate, ids
from outpost_kit.db.listing import list_page
from outpost_kit.db.uow import UnitOfWorkFactory


@dataclass(frozen=True)
class Deps:
    uow: UnitOfWorkFactory


def _require_operator(ctx: RequestContext) -> None:
    if ctx.principal.kind is not PrincipalKind.OPERATOR:
        raise AccessDenied("only the platform operator may do this")


async def create_organization(
    deps: Deps, ctx: RequestContext, cmd: api.CreateOrganization
) -> api.OrganizationView:
    _require_operator(ctx)
    org_id = ids.new_id()
    async with deps.uow(org_id) as uow:
        try:
            _state, envelopes = await aggregate.execute(
                uow,
                ctx,
                stream_id=org_id,
                stream_type=organizations.STREAM_TYPE,
                decide=organizations.decide,
                evolve=organizations.evolve,
                command=cmd,
                org_id=org_id,
            )
        except IntegrityError as exc:
            raise Conflict(f"an organization named '{cmd.name}' already exists") from exc
        await uow.commit()
    return api.OrganizationView(
        id=org_id,
        name=cmd.name.strip(),
        status=api.OrganizationStatus.ACTIVE,
        created_at=envelopes[0].occurred_at,
        version=1,
    )


async def get_organization(
    deps: Deps, ctx: RequestContext, q: api.GetOrganization
) -> api.OrganizationView:
    if ctx.principal.kind is not PrincipalKind.OPERATOR and q.id != ctx.org_id:
        raise NotFound("no such organization")
    async with deps.uow(ctx.org_id) as uow:
        row = (
            await uow.execute(
                f"SELECT {queries.ORGANIZATIONS.columns} FROM organizations WHERE id = :id",
                {"id": q.id},
            )
        ).first()
    if row is None:
        raise NotFound("no such organization")
    return queries.organization_view(row._mapping)


async def list_organizations(
    deps: Deps, ctx: RequestContext, q: api.ListOrganizations
) -> Page[api.OrganizationView]:
    _require_operator(ctx)
    async with deps.uow(ctx.org_id) as uow:
        return await list_page(uow.conn, queries.ORGANIZATIONS, q.query, queries.organization_view)


async def create_api_key(
    deps: Deps, ctx: RequestContext, cmd: api.CreateApiKey
) -> api.ApiKeyIssued:
    if ctx.org_id == PLATFORM_ORG_ID:
        raise AccessDenied("API keys belong to an organization: name it with X-Organization")
    granted = ("*",) if ctx.principal.kind is PrincipalKind.OPERATOR else ctx.principal.scopes
    scopes = tuple(cmd.scopes) if cmd.scopes is not None else granted
    key, prefix = generate_key()
    key_id = ids.new_id()
    async with deps.uow(ctx.org_id) as uow:
        await _require_active_org(uow, ctx.org_id)
        _state, envelopes = await aggregate.execute(
            uow,
            ctx,
            stream_id=key_id,
            stream_type=api_keys.STREAM_TYPE,
            decide=api_keys.decide,
            evolve=api_keys.evolve,
            org_id=ctx.org_id,
            command=api_keys.IssueApiKey(
                name=cmd.name,
                prefix=prefix,
                key_hash=hash_key(key),
                scopes=scopes,
                granted=granted,
                expires_at=cmd.expires_at,
                created_by=ctx.principal.id,
            ),
        )
        await uow.commit()
    return api.ApiKeyIssued(
        id=key_id,
        name=cmd.name,
        key=key,
        scopes=list(scopes),
        created_at=envelopes[0].occurred_at,
        expires_at=cmd.expires_at,
    )


async def _require_active_org(uow: Any, org_id: UUID) -> None:
    status = (
        await uow.execute("SELECT status FROM organizations WHERE id = :id", {"id": org_id})
    ).scalar()
    if status is None:
        raise NotFound("no such organization")
    if status != api.OrganizationStatus.ACTIVE.value:
        raise AccessDenied("the organization is suspended")


async def list_api_keys(
    deps: Deps, ctx: RequestContext, q: api.ListApiKeys
) -> Page[api.ApiKeyView]:
    async with deps.uow(ctx.org_id) as uow:
        return await list_page(uow.conn, queries.API_KEYS, q.query, queries.api_key_view)


async def revoke_api_key(deps: Deps, ctx: RequestContext, cmd: api.RevokeApiKey) -> Empty:
    async with deps.uow(ctx.org_id) as uow:
        state, _ = await aggregate.load(uow, api_keys.evolve, cmd.id)
        if state is None:
            raise NotFound("no such API key")
        await aggregate.execute(
            uow,
            ctx,
            stream_id=cmd.id,
            stream_type=api_keys.STREAM_TYPE,
            decide=api_keys.decide,
            evolve=api_keys.evolve,
            org_id=ctx.org_id,
            command=api_keys.RevokeApiKey(),
        )
        await uow.commit()
    return Empty()


async def issue_operator_key(deps: Deps, name: str, now: datetime | None = None) -> str:
    """Create a platform operator key (install time; ``make dev`` does it). Returns the key."""
    key, prefix = generate_key()
    key_id = ids.new_id()
    async with deps.uow(PLATFORM_ORG_ID) as uow:
        await aggregate.execute(
            uow,
            None,
            stream_id=key_id,
            stream_type=api_keys.STREAM_TYPE,
            decide=api_keys.decide,
            evolve=api_keys.evolve,
            org_id=PLATFORM_ORG_ID,
            command=api_keys.IssueApiKey(
                name=name,
                prefix=prefix,
                key_hash=hash_key(key),
                scopes=("*",),
                granted=("*",),
                operator=True,
            ),
            now=now,
        )
        await uow.commit()
    return key


async def operator_key_valid(deps: Deps, key: str) -> bool:
    """Whether ``key`` is a live operator key (so ``make dev`` can reuse a stored one)."""
    from outpost_contracts.credentials import lookup_prefix, verify_key

    prefix = lookup_prefix(key)
    if prefix is None:
        return False
    async with deps.uow(PLATFORM_ORG_ID) as uow:
        row = (
            await uow.execute(
                "SELECT id FROM api_keys WHERE prefix = :p AND operator AND revoked_at IS NULL",
                {"p": prefix},
            )
        ).first()
        if row is None:
            return False
        envs = await uow.events.load(row.id)
    created = envs[0].data
    return isinstance(created, api.ApiKeyCreated) and verify_key(key, created.key_hash)


Handler = Callable[[Deps, RequestContext, Any], Awaitable[Any]]

HANDLERS: dict[Operation[Any, Any], Handler] = {
    api.CREATE_ORGANIZATION: create_organization,
    api.GET_ORGANIZATION: get_organization,
    api.LIST_ORGANIZATIONS: list_organizations,
    api.CREATE_API_KEY: create_api_key,
    api.LIST_API_KEYS: list_api_keys,
    api.REVOKE_API_KEY: revoke_api_key,
}
