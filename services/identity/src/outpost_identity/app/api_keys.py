"""The API key aggregate's use cases, the gateways' usage reports, and the platform
operator's key (install time)."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from outpost_contracts import identity as api
from outpost_contracts.base import Empty
from outpost_contracts.credentials import generate_key, hash_key, lookup_prefix, verify_key
from outpost_contracts.envelope import PLATFORM_ORG_ID, PrincipalKind, RequestContext
from outpost_contracts.errors import AccessDenied, NotFound
from outpost_contracts.query import Page
from outpost_identity.app.deps import Deps, require_active_org
from outpost_identity.domain import api_keys
from outpost_kit import ids
from outpost_kit.aggregate import Aggregate

API_KEYS = Aggregate(api_keys.STREAM_TYPE, api_keys.decide, api_keys.evolve)


async def create_api_key(
    deps: Deps, ctx: RequestContext, cmd: api.CreateApiKey
) -> api.ApiKeyIssued:
    if ctx.org_id == PLATFORM_ORG_ID:
        raise AccessDenied("API keys belong to an organization: name it with X-Organization")
    granted = ("*",) if ctx.principal.kind is PrincipalKind.OPERATOR else ctx.principal.scopes
    scopes = tuple(cmd.scopes) if cmd.scopes is not None else granted
    key, prefix = generate_key()
    key_id = ids.new_id()
    async with deps.uow(ctx.org_id) as tx:
        await require_active_org(tx, ctx.org_id)
        _state, envelopes = await API_KEYS.execute(
            tx,
            ctx,
            stream_id=key_id,
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
        await tx.commit()
    return api.ApiKeyIssued(
        id=key_id,
        name=cmd.name,
        key=key,
        scopes=list(scopes),
        created_at=envelopes[0].occurred_at,
        expires_at=cmd.expires_at,
    )


async def list_api_keys(
    deps: Deps, ctx: RequestContext, q: api.ListApiKeys
) -> Page[api.ApiKeyView]:
    async with deps.uow(ctx.org_id) as tx:
        return await tx.api_keys(q.query)


async def record_key_usage(deps: Deps, ctx: RequestContext, cmd: api.RecordKeyUsage) -> Empty:
    """The gateways' usage reports: ``last_used_at`` only moves forward, whatever order
    reports from several gateways arrive in. One transaction, tenant by tenant (RLS)."""
    by_org: dict[UUID, list[api.KeyUse]] = {}
    for use in cmd.uses:
        by_org.setdefault(use.org_id, []).append(use)
    async with deps.uow(None) as tx:
        for org_id, uses in by_org.items():
            await tx.set_tenant(org_id)
            for use in uses:
                await tx.key_used(use.id, use.at)
        await tx.commit()
    return Empty()


async def revoke_api_key(deps: Deps, ctx: RequestContext, cmd: api.RevokeApiKey) -> Empty:
    async with deps.uow(ctx.org_id) as tx:
        state, _ = await API_KEYS.load(tx, cmd.id)
        if state is None:
            raise NotFound("no such API key")
        await API_KEYS.execute(
            tx, ctx, stream_id=cmd.id, org_id=ctx.org_id, command=api_keys.RevokeApiKey()
        )
        await tx.commit()
    return Empty()


async def issue_operator_key(deps: Deps, name: str, now: datetime | None = None) -> str:
    """Create a platform operator key (install time; ``make dev`` does it). Returns the key."""
    key, prefix = generate_key()
    key_id = ids.new_id()
    async with deps.uow(PLATFORM_ORG_ID) as tx:
        await API_KEYS.execute(
            tx,
            None,
            stream_id=key_id,
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
        await tx.commit()
    return key


async def operator_key_valid(deps: Deps, key: str) -> bool:
    """Whether ``key`` is a live operator key (so ``make dev`` can reuse a stored one)."""
    prefix = lookup_prefix(key)
    if prefix is None:
        return False
    async with deps.uow(PLATFORM_ORG_ID) as tx:
        key_id = await tx.operator_key(prefix)
        if key_id is None:
            return False
        envs = await tx.events.load(key_id)
    created = envs[0].data
    return isinstance(created, api.ApiKeyCreated) and verify_key(key, created.key_hash)
