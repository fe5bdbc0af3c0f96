"""The organization aggregate's use cases (operator only, but get of one's own)."""

from __future__ import annotations

from uuid import UUID

from outpost_contracts import identity as api
from outpost_contracts.envelope import PrincipalKind, RequestContext
from outpost_contracts.errors import Conflict, NotFound
from outpost_contracts.query import Page
from outpost_identity.app.deps import Deps, require_operator
from outpost_identity.domain import organizations
from outpost_kit import ids
from outpost_kit.aggregate import Aggregate, Taken

ORGANIZATIONS = Aggregate(organizations.STREAM_TYPE, organizations.decide, organizations.evolve)


async def create_organization(
    deps: Deps, ctx: RequestContext, cmd: api.CreateOrganization
) -> api.OrganizationView:
    require_operator(ctx)
    org_id = ids.new_id()
    async with deps.uow(org_id) as tx:
        try:
            _state, envelopes = await ORGANIZATIONS.execute(
                tx, ctx, stream_id=org_id, command=cmd, org_id=org_id
            )
        except Taken as exc:
            raise Conflict(f"an organization named '{cmd.name}' already exists") from exc
        await tx.commit()
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
    async with deps.uow(ctx.org_id) as tx:
        view = await tx.organization(q.id)
    if view is None:
        raise NotFound("no such organization")
    return view


async def suspend_organization(
    deps: Deps, ctx: RequestContext, cmd: api.SuspendOrganizationById
) -> api.OrganizationView:
    """Operator only. The organization's stream lives in its own tenant; the gateways learn
    ``OrganizationSuspended`` from the IDENTITY stream and refuse its credentials; devices,
    readings and alerting record it and stop its devices, telemetry and notifications
    (decision 76)."""
    return await _change(deps, ctx, cmd.id, organizations.SuspendOrganization(reason=cmd.reason))


async def reinstate_organization(
    deps: Deps, ctx: RequestContext, cmd: api.ReinstateOrganizationById
) -> api.OrganizationView:
    """Operator only: lift a suspension (``OrganizationReinstated``, decision 76)."""
    return await _change(deps, ctx, cmd.id, organizations.ReinstateOrganization())


async def _change(
    deps: Deps, ctx: RequestContext, org_id: UUID, command: organizations.Command
) -> api.OrganizationView:
    require_operator(ctx)
    async with deps.uow(org_id) as tx:
        state, _version = await ORGANIZATIONS.load(tx, org_id)
        if state is None:
            raise NotFound("no such organization")
        await ORGANIZATIONS.execute(tx, ctx, stream_id=org_id, command=command, org_id=org_id)
        view = await tx.organization(org_id)
        await tx.commit()
    if view is None:
        raise NotFound("no such organization")
    return view


async def list_organizations(
    deps: Deps, ctx: RequestContext, q: api.ListOrganizations
) -> Page[api.OrganizationView]:
    require_operator(ctx)
    async with deps.uow(ctx.org_id) as tx:
        return await tx.organizations(q.query)
