"""The membership aggregate: a person as one organization knows them (decision 78). Granted
by ``users.create_user``; read here, as the organization's users."""

from __future__ import annotations

from outpost_contracts import identity as api
from outpost_contracts.envelope import RequestContext
from outpost_contracts.errors import NotFound
from outpost_contracts.query import Page
from outpost_identity.app.deps import Deps
from outpost_identity.domain import users
from outpost_kit.aggregate import Aggregate

MEMBERSHIPS = Aggregate(users.MEMBERSHIP_STREAM, users.decide_membership, users.evolve_membership)


async def list_users(deps: Deps, ctx: RequestContext, q: api.ListUsers) -> Page[api.UserView]:
    async with deps.uow(ctx.org_id) as tx:
        return await tx.users(q.query)


async def get_user(deps: Deps, ctx: RequestContext, q: api.GetUser) -> api.UserView:
    async with deps.uow(ctx.org_id) as tx:
        view = await tx.user(q.id)
    if view is None:
        raise NotFound("no such user")
    return view
