"""The user aggregate (a person on the platform, with their password) and the use case that
adds one to an organization (a membership, ``memberships.py``)."""

from __future__ import annotations

from outpost_contracts import identity as api
from outpost_contracts.envelope import PLATFORM_ORG_ID, PrincipalKind, RequestContext
from outpost_contracts.errors import AccessDenied, Conflict
from outpost_contracts.tokens import Role
from outpost_identity.app.deps import Deps, passwords, require_active_org
from outpost_identity.app.memberships import MEMBERSHIPS
from outpost_identity.domain import users
from outpost_kit import ids
from outpost_kit.aggregate import Aggregate, Taken

USERS = Aggregate(users.USER_STREAM, users.decide_user, users.evolve_user)


async def create_user(deps: Deps, ctx: RequestContext, cmd: api.CreateUser) -> api.UserView:
    if ctx.org_id == PLATFORM_ORG_ID:
        raise AccessDenied("users belong to an organization: name it with X-Organization")
    granted_by = None
    if ctx.principal.kind is PrincipalKind.USER:
        granted_by = Role(ctx.principal.role) if ctx.principal.role else Role.VIEWER
    granted_scopes = (
        None if ctx.principal.kind is PrincipalKind.OPERATOR else tuple(ctx.principal.scopes)
    )
    if not users.may_grant(granted_by, granted_scopes, cmd.role):  # before paying for the hash
        raise AccessDenied(f"this credential cannot grant the role {cmd.role}")
    # The same argon2 work whether the person is new to the platform or not (decision 78).
    password_hash = await passwords(deps).hash(cmd.password)
    try:
        return await _add_member(deps, ctx, cmd, granted_by, granted_scopes, password_hash)
    except Taken:
        # Someone registered the email between our look-up and our insert: the person
        # exists now, and is added as any existing person is.
        return await _add_member(deps, ctx, cmd, granted_by, granted_scopes, password_hash)


async def _add_member(
    deps: Deps,
    ctx: RequestContext,
    cmd: api.CreateUser,
    granted_by: Role | None,
    granted_scopes: tuple[str, ...] | None,
    password_hash: str,
) -> api.UserView:
    """One person may belong to several organizations (decision 78). A new email makes a
    platform user with this password; an email the platform knows (from any organization)
    adds that person, whose password stays theirs: the one given here is not stored, so no
    organization sets or learns another's password. Either way the answer is the new
    membership (its id, its time), so it says nothing of the person's other organizations."""
    email = users.normalize_email(cmd.email)
    membership_id = ids.new_id()
    async with deps.uow(ctx.org_id) as tx:
        await require_active_org(tx, ctx.org_id)
        await tx.set_tenant(PLATFORM_ORG_ID)  # users are platform data
        user_id = await tx.user_by_email(email)
        if user_id is None:
            user_id = ids.new_id()
            _user, envelopes = await USERS.execute(
                tx,
                ctx,
                stream_id=user_id,
                command=users.RegisterUser(email=cmd.email),
                org_id=PLATFORM_ORG_ID,
            )
            await tx.save_password(user_id, password_hash, envelopes[0].occurred_at)
        await tx.set_tenant(ctx.org_id)
        if await tx.member(user_id) is not None:
            raise Conflict("a user with this email is already a member of this organization")
        _membership, granted = await MEMBERSHIPS.execute(
            tx,
            ctx,
            stream_id=membership_id,
            command=users.GrantMembership(
                user_id=user_id,
                email=cmd.email,
                role=cmd.role,
                granted_by_role=granted_by,
                granted_by_scopes=granted_scopes,
            ),
            org_id=ctx.org_id,
        )
        await tx.commit()
    return api.UserView(
        id=membership_id,
        email=email,
        role=cmd.role,
        created_at=granted[0].occurred_at,
    )
