"""The integration aggregate's use cases (issue 23, ADR 0097): broker credentials for an
organization's own service. The password is shown once (creation, rotation); the events
carry its hash, which the broker's auth callout (devices) checks connections against."""

from __future__ import annotations

import hashlib
import secrets
from uuid import UUID

from outpost_contracts import identity as api
from outpost_contracts import integrations
from outpost_contracts.base import Empty
from outpost_contracts.envelope import PLATFORM_ORG_ID, RequestContext
from outpost_contracts.errors import AccessDenied, NotFound
from outpost_contracts.query import Page
from outpost_identity.app.deps import Deps, require_active_org
from outpost_identity.domain import integrations as domain
from outpost_kit import ids
from outpost_kit.aggregate import Aggregate

INTEGRATIONS = Aggregate(domain.STREAM_TYPE, domain.decide, domain.evolve)

PASSWORD_PREFIX = "opi_"


def new_password() -> str:
    """256 random bits; the prefix makes a leaked one recognizable (secret scanners)."""
    return PASSWORD_PREFIX + secrets.token_urlsafe(32)


def hash_password(password: str) -> str:
    """SHA-256: the password is random and long, so a slow hash buys nothing (as API keys)."""
    return hashlib.sha256(password.encode()).hexdigest()


def _require_org_credential(ctx: RequestContext) -> None:
    if ctx.org_id == PLATFORM_ORG_ID:
        raise AccessDenied("integrations belong to an organization: name it with X-Organization")


def _issued(view: api.IntegrationView, password: str) -> api.IntegrationIssued:
    return api.IntegrationIssued(
        id=view.id,
        name=view.name,
        user=view.user,
        password=password,
        subjects=view.subjects,
        deliver_policy=view.deliver_policy,
        start_time=view.start_time,
        stream=view.stream,
        consumers=view.consumers,
        inbox_prefix=view.inbox_prefix,
        created_at=view.created_at,
    )


async def create_integration(
    deps: Deps, ctx: RequestContext, cmd: api.CreateIntegration
) -> api.IntegrationIssued:
    _require_org_credential(ctx)
    integration_id = ids.new_id()
    password = new_password()
    async with deps.uow(ctx.org_id) as tx:
        await require_active_org(tx, ctx.org_id)
        _, envelopes = await INTEGRATIONS.execute(
            tx,
            ctx,
            stream_id=integration_id,
            org_id=ctx.org_id,
            command=domain.IssueIntegration(
                id=integration_id,
                org_id=ctx.org_id,
                name=cmd.name,
                password_hash=hash_password(password),
                subjects=tuple(cmd.subjects),
                deliver_policy=cmd.deliver_policy,
                start_time=cmd.start_time,
                groups=tuple(cmd.groups or (integrations.DEFAULT_GROUP,)),
                created_by=ctx.principal.id,
            ),
        )
        created = envelopes[0].data
        assert isinstance(created, api.IntegrationCreated)
        if deps.consumers is not None:  # before the commit: no integration without them
            await deps.consumers.ensure(
                created.consumers,
                created.filters,
                created.deliver_policy,
                created.start_time,
                f"integration {integration_id} of {ctx.org_id}: {cmd.name}",
            )
        view = await tx.integration(integration_id)
        await tx.commit()
    assert view is not None
    return _issued(view, password)


async def list_integrations(
    deps: Deps, ctx: RequestContext, q: api.ListIntegrations
) -> Page[api.IntegrationView]:
    async with deps.uow(ctx.org_id) as tx:
        return await tx.integrations(q.query)


async def get_integration(
    deps: Deps, ctx: RequestContext, q: api.GetIntegration
) -> api.IntegrationView:
    async with deps.uow(ctx.org_id) as tx:
        view = await tx.integration(q.id)
    if view is None:
        raise NotFound("no such integration")
    return view


async def rotate_integration_credential(
    deps: Deps, ctx: RequestContext, cmd: api.RotateIntegrationCredential
) -> api.IntegrationIssued:
    password = new_password()
    async with deps.uow(ctx.org_id) as tx:
        if await tx.integration(cmd.id) is None:  # another organization's id too
            raise NotFound("no such integration")
        await INTEGRATIONS.execute(
            tx,
            ctx,
            stream_id=cmd.id,
            org_id=ctx.org_id,
            command=domain.RotateCredential(password_hash=hash_password(password)),
        )
        view = await tx.integration(cmd.id)
        await tx.commit()
    assert view is not None
    return _issued(view, password)


async def revoke_integration(deps: Deps, ctx: RequestContext, cmd: api.RevokeIntegration) -> Empty:
    async with deps.uow(ctx.org_id) as tx:
        view = await tx.integration(cmd.id)
        if view is None:
            raise NotFound("no such integration")
        await INTEGRATIONS.execute(
            tx, ctx, stream_id=cmd.id, org_id=ctx.org_id, command=domain.RevokeIntegration()
        )
        await tx.commit()
    if deps.consumers is not None:  # after the commit: its credentials are refused already
        await deps.consumers.remove(tuple(view.consumers.values()))
    return Empty()


async def record_integration_connections(
    deps: Deps, ctx: RequestContext, cmd: api.RecordIntegrationConnections
) -> Empty:
    """The auth callout's reports: ``last_connected_at`` only moves forward, whatever order
    reports from several devices replicas arrive in. One transaction, tenant by tenant."""
    by_org: dict[UUID, list[api.IntegrationConnection]] = {}
    for connection in cmd.connections:
        by_org.setdefault(connection.org_id, []).append(connection)
    async with deps.uow(None) as tx:
        for org_id, connections in by_org.items():
            await tx.set_tenant(org_id)
            for connection in connections:
                await tx.integration_connected(connection.id, connection.at)
        await tx.commit()
    return Empty()
