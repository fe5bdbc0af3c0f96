"""The session aggregate's use cases: login, refresh (rotation, reuse revokes the family),
logout; each issues an access token signed with the active signing key."""

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
from outpost_contracts.tokens import TOKEN_TYPE, Role
from outpost_identity.adapters import signing
from outpost_identity.app.deps import Deps, passwords, require_active_org, vault
from outpost_identity.app.ports import IdentityTx
from outpost_identity.app.signing_keys import active_secret
from outpost_identity.domain import sessions, users
from outpost_kit import ids
from outpost_kit.aggregate import Aggregate

SESSIONS = Aggregate(sessions.STREAM_TYPE, sessions.decide, sessions.evolve)

_BAD_LOGIN = "the email or password is not valid"


def _invalid_token() -> OutpostError:
    return OutpostError("the refresh token is not valid", type=ErrorType.INVALID_TOKEN)


async def _issue_tokens(
    deps: Deps,
    tx: IdentityTx,
    *,
    user_id: UUID,
    org_id: UUID,
    role: Role,
    session_id: UUID,
    session_expires_at: datetime,
    refresh_token: str,
    now: datetime,
) -> api.TokenIssued:
    key = await active_secret(tx, now)
    expires_at = min(now + deps.access_ttl, session_expires_at, key.not_after)
    token = signing.sign_access_token(
        vault(deps).open(key.private_key_enc),
        key.kid,
        user_id=user_id,
        org_id=org_id,
        role=role.value,
        session_id=session_id,
        issued_at=now,
        expires_at=expires_at,
    )
    return api.TokenIssued(
        access_token=token,
        token_type=TOKEN_TYPE,
        expires_in=max(0, int((expires_at - now).total_seconds())),
        refresh_token=refresh_token,
    )


async def login(deps: Deps, ctx: RequestContext, cmd: api.Login) -> api.TokenIssued:
    vault(deps)
    email = users.normalize_email(cmd.email)
    async with deps.uow(PLATFORM_ORG_ID) as tx:
        found = await tx.credentials(email)
    # The same argon2 work whether or not the email exists (a dummy hash when it does not).
    if not await passwords(deps).verify(found.password_hash if found else None, cmd.password):
        raise OutpostError(_BAD_LOGIN, type=ErrorType.INVALID_AUTH)
    assert found is not None
    organizations_ = list(found.organizations)
    if cmd.organization is not None:
        if cmd.organization not in organizations_:
            raise AccessDenied("the user is not a member of that organization")
        org_id = cmd.organization
    elif len(organizations_) == 1:
        org_id = organizations_[0]
    elif not organizations_:
        raise AccessDenied("the user belongs to no organization")
    else:
        raise validation_error("organization", "the user belongs to several: name one")
    now = ids.now()
    session_id = ids.new_id()
    refresh_token = signing.new_refresh_token(org_id, session_id)
    expires_at = now + deps.refresh_ttl
    async with deps.uow(org_id) as tx:
        await require_active_org(tx, org_id)
        membership = await tx.member(found.user_id)
        if membership is None:
            raise AccessDenied("the user is not a member of that organization")
        # In an organization a person is their membership (decision 78): the session's
        # subject is the id that organization knows them by, never the platform user's.
        member_id = membership.membership_id
        await SESSIONS.execute(
            tx,
            ctx,
            stream_id=session_id,
            command=sessions.StartSession(
                user_id=member_id,
                role=membership.role,
                refresh_token_hash=signing.hash_refresh_token(refresh_token),
                expires_at=expires_at,
            ),
            org_id=org_id,
            now=now,
        )
        issued = await _issue_tokens(
            deps,
            tx,
            user_id=member_id,
            org_id=org_id,
            role=membership.role,
            session_id=session_id,
            session_expires_at=expires_at,
            refresh_token=refresh_token,
            now=now,
        )
        await tx.commit()
    return issued


async def refresh(deps: Deps, ctx: RequestContext, cmd: api.Refresh) -> api.TokenIssued:
    vault(deps)
    parsed = signing.parse_refresh_token(cmd.refresh_token)
    if parsed is None:
        raise _invalid_token()
    org_id, session_id = parsed
    now = ids.now()
    new_token = signing.new_refresh_token(org_id, session_id)
    async with deps.uow(org_id) as tx:
        state, _envs = await SESSIONS.execute(
            tx,
            ctx,
            stream_id=session_id,
            command=sessions.RefreshSession(
                presented_hash=signing.hash_refresh_token(cmd.refresh_token),
                new_hash=signing.hash_refresh_token(new_token),
            ),
            org_id=org_id,
            now=now,
        )
        if state.revoked is not None:  # a spent token came back: the family is now revoked
            await tx.commit()
            raise _invalid_token()
        await require_active_org(tx, org_id)
        issued = await _issue_tokens(
            deps,
            tx,
            user_id=state.user_id,
            org_id=org_id,
            role=state.role,
            session_id=session_id,
            session_expires_at=state.expires_at,
            refresh_token=new_token,
            now=now,
        )
        await tx.commit()
    return issued


async def logout(deps: Deps, ctx: RequestContext, cmd: api.Logout) -> Empty:
    session_id = ctx.principal.session_id
    if ctx.principal.kind is not PrincipalKind.USER or session_id is None:
        raise AccessDenied("logout needs a session's access token")
    async with deps.uow(ctx.org_id) as tx:
        state, _ = await SESSIONS.load(tx, session_id)
        if state is None:
            raise NotFound("no such session")
        await SESSIONS.execute(
            tx,
            ctx,
            stream_id=session_id,
            command=sessions.RevokeSession(reason=sessions.LOGOUT),
            org_id=ctx.org_id,
        )
        await tx.commit()
    return Empty()
