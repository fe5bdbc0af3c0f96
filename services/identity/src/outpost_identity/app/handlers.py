"""Identity's use cases and its handler table."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from sqlalchemy.exc import IntegrityError

from outpost_contracts import identity as api
from outpost_contracts.base import Empty
from outpost_contracts.credentials import generate_key, hash_key
from outpost_contracts.envelope import PLATFORM_ORG_ID, PrincipalKind, RequestContext
from outpost_contracts.errors import (
    AccessDenied,
    Conflict,
    ErrorType,
    NotFound,
    OutpostError,
    ServiceUnavailable,
    validation_error,
)
from outpost_contracts.query import Page
from outpost_contracts.rpc import Operation
from outpost_contracts.tokens import CLIENT_TOKEN_TYPE, TOKEN_TYPE, Role
from outpost_identity.adapters import queries, signing
from outpost_identity.adapters.passwords import Passwords
from outpost_identity.adapters.signing import KeyVault
from outpost_identity.domain import (
    api_keys,
    oauth_clients,
    organizations,
    sessions,
    signing_keys,
    users,
)
from outpost_kit import aggregate, ids
from outpost_kit.db.listing import list_page
from outpost_kit.db.uow import UnitOfWorkFactory

API_KEYS = aggregate.Aggregate(api_keys.STREAM_TYPE, api_keys.decide, api_keys.evolve)
OAUTH_CLIENTS = aggregate.Aggregate(
    oauth_clients.STREAM_TYPE, oauth_clients.decide, oauth_clients.evolve
)
ORGANIZATIONS = aggregate.Aggregate(
    organizations.STREAM_TYPE, organizations.decide, organizations.evolve
)
SESSIONS = aggregate.Aggregate(sessions.STREAM_TYPE, sessions.decide, sessions.evolve)
SIGNING_KEYS = aggregate.Aggregate(
    signing_keys.STREAM_TYPE, signing_keys.decide, signing_keys.evolve
)
MEMBERSHIPS = aggregate.Aggregate(
    users.MEMBERSHIP_STREAM, users.decide_membership, users.evolve_membership
)
USERS = aggregate.Aggregate(users.USER_STREAM, users.decide_user, users.evolve_user)


@dataclass(frozen=True)
class Deps:
    uow: UnitOfWorkFactory
    passwords: Passwords | None = None
    vault: KeyVault | None = None  # None: sessions are not configured (no encryption key)
    access_ttl: timedelta = timedelta(minutes=15)
    refresh_ttl: timedelta = timedelta(days=30)
    signing_key_lifetime: timedelta = timedelta(days=90)


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
            _state, envelopes = await ORGANIZATIONS.execute(
                uow,
                ctx,
                stream_id=org_id,
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


async def suspend_organization(
    deps: Deps, ctx: RequestContext, cmd: api.SuspendOrganizationById
) -> api.OrganizationView:
    """Operator only. The organization's stream lives in its own tenant; the gateways learn
    ``OrganizationSuspended`` from the IDENTITY stream and refuse its credentials; devices,
    readings and alerting record it and stop its devices, telemetry and notifications
    (decision 76)."""
    return await _change_organization(
        deps, ctx, cmd.id, organizations.SuspendOrganization(reason=cmd.reason)
    )


async def reinstate_organization(
    deps: Deps, ctx: RequestContext, cmd: api.ReinstateOrganizationById
) -> api.OrganizationView:
    """Operator only: lift a suspension (``OrganizationReinstated``, decision 76)."""
    return await _change_organization(deps, ctx, cmd.id, organizations.ReinstateOrganization())


async def _change_organization(
    deps: Deps, ctx: RequestContext, org_id: UUID, command: organizations.Command
) -> api.OrganizationView:
    _require_operator(ctx)
    async with deps.uow(org_id) as uow:
        state, _version = await ORGANIZATIONS.load(uow, org_id)
        if state is None:
            raise NotFound("no such organization")
        await ORGANIZATIONS.execute(uow, ctx, stream_id=org_id, command=command, org_id=org_id)
        row = (
            await uow.execute(
                f"SELECT {queries.ORGANIZATIONS.columns} FROM organizations WHERE id = :id",
                {"id": org_id},
            )
        ).first()
        await uow.commit()
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
        _state, envelopes = await API_KEYS.execute(
            uow,
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


async def record_key_usage(deps: Deps, ctx: RequestContext, cmd: api.RecordKeyUsage) -> Empty:
    """The gateways' usage reports: ``last_used_at`` only moves forward, whatever order
    reports from several gateways arrive in. One transaction, tenant by tenant (RLS)."""
    by_org: dict[Any, list[api.KeyUse]] = {}
    for use in cmd.uses:
        by_org.setdefault(use.org_id, []).append(use)
    async with deps.uow(None) as uow:
        for org_id, uses in by_org.items():
            await uow.set_tenant(org_id)
            for use in uses:
                await uow.execute(
                    "UPDATE api_keys SET last_used_at = greatest(last_used_at, :at) WHERE id = :id",
                    {"id": use.id, "at": use.at},
                )
        await uow.commit()
    return Empty()


async def revoke_api_key(deps: Deps, ctx: RequestContext, cmd: api.RevokeApiKey) -> Empty:
    async with deps.uow(ctx.org_id) as uow:
        state, _ = await API_KEYS.load(uow, cmd.id)
        if state is None:
            raise NotFound("no such API key")
        await API_KEYS.execute(
            uow,
            ctx,
            stream_id=cmd.id,
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
        await API_KEYS.execute(
            uow,
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


# --- users ----------------------------------------------------------------------------------


def _passwords(deps: Deps) -> Passwords:
    if deps.passwords is None:
        raise ServiceUnavailable("password hashing is not configured")
    return deps.passwords


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
    password_hash = await _passwords(deps).hash(cmd.password)
    user_id, membership_id = ids.new_id(), ids.new_id()
    async with deps.uow(ctx.org_id) as uow:
        await _require_active_org(uow, ctx.org_id)
        await uow.set_tenant(PLATFORM_ORG_ID)  # users are platform data
        try:
            _user, envelopes = await USERS.execute(
                uow,
                ctx,
                stream_id=user_id,
                command=users.RegisterUser(email=cmd.email),
                org_id=PLATFORM_ORG_ID,
            )
        except IntegrityError as exc:
            raise Conflict("a user with this email already exists") from exc
        await uow.execute(
            "INSERT INTO user_passwords (user_id, password_hash, updated_at) VALUES (:u, :h, :at)",
            {"u": user_id, "h": password_hash, "at": envelopes[0].occurred_at},
        )
        await uow.set_tenant(ctx.org_id)
        await MEMBERSHIPS.execute(
            uow,
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
        await uow.commit()
    return api.UserView(
        id=user_id,
        email=users.normalize_email(cmd.email),
        role=cmd.role,
        created_at=envelopes[0].occurred_at,
    )


async def list_users(deps: Deps, ctx: RequestContext, q: api.ListUsers) -> Page[api.UserView]:
    async with deps.uow(ctx.org_id) as uow:
        return await list_page(uow.conn, queries.USERS, q.query, queries.user_view)


async def get_user(deps: Deps, ctx: RequestContext, q: api.GetUser) -> api.UserView:
    async with deps.uow(ctx.org_id) as uow:
        row = (
            await uow.execute(
                f"SELECT {queries.USERS.columns} FROM memberships WHERE id = :id", {"id": q.id}
            )
        ).first()
    if row is None:
        raise NotFound("no such user")
    return queries.user_view(row._mapping)


# --- signing keys ---------------------------------------------------------------------------

_SIGNING_LOCK = "SELECT pg_advisory_xact_lock(hashtext('outpost.identity.signing_key'))"


def _vault(deps: Deps) -> KeyVault:
    if deps.vault is None:
        raise ServiceUnavailable("sessions are not configured on this deployment")
    return deps.vault


async def ensure_signing_key(
    deps: Deps, *, force: bool = False, revoke_previous: bool = False, now: datetime | None = None
) -> str:
    """The kid of the active signing key, making one (and retiring the previous one with an
    overlap of one access-token lifetime) when there is none, it nears its end, or ``force``.
    ``revoke_previous`` (a compromised key) ends the previous key's overlap at once: every
    token it signed is refused as soon as gateways apply the event."""
    vault = _vault(deps)
    now = now or ids.now()
    async with deps.uow(PLATFORM_ORG_ID) as uow:
        await uow.execute(_SIGNING_LOCK)
        active = (
            await uow.execute(
                "SELECT id, kid, not_after FROM signing_keys WHERE retired_at IS NULL"
            )
        ).first()
        renew_at = max(2 * deps.access_ttl, deps.signing_key_lifetime / 10)
        if active is not None and not force and active.not_after - now > renew_at:
            return str(active.kid)
        if active is not None:
            await SIGNING_KEYS.execute(
                uow,
                None,
                stream_id=active.id,
                command=signing_keys.RetireSigningKey(
                    verify_until=now
                    if revoke_previous
                    else min(active.not_after, now + deps.access_ttl)
                ),
                org_id=PLATFORM_ORG_ID,
                now=now,
            )
        pair = vault.generate()
        key_id = ids.new_id()
        kid = str(key_id)
        await SIGNING_KEYS.execute(
            uow,
            None,
            stream_id=key_id,
            command=signing_keys.PublishSigningKey(
                kid=kid,
                public_key_pem=pair.public_key_pem,
                not_after=now + deps.signing_key_lifetime,
            ),
            org_id=PLATFORM_ORG_ID,
            now=now,
        )
        await uow.execute(
            "INSERT INTO signing_key_secrets (kid, private_key_enc) VALUES (:kid, :enc)",
            {"kid": kid, "enc": pair.private_key_enc},
        )
        await uow.commit()
    return kid


async def _active_signing_key(uow: Any, now: datetime) -> Any:
    """The active signing key's kid, end and encrypted private half (platform data)."""
    row = (
        await uow.execute(
            "SELECT k.kid, k.not_after, s.private_key_enc FROM signing_keys k"
            " JOIN signing_key_secrets s ON s.kid = k.kid WHERE k.retired_at IS NULL"
        )
    ).first()
    if row is None or row.not_after <= now:
        raise ServiceUnavailable("no signing key is active yet; try again shortly")
    return row


async def _issue_tokens(
    deps: Deps,
    uow: Any,
    *,
    user_id: UUID,
    org_id: UUID,
    role: Role,
    session_id: UUID,
    session_expires_at: datetime,
    refresh_token: str,
    now: datetime,
) -> api.TokenIssued:
    row = await _active_signing_key(uow, now)
    expires_at = min(now + deps.access_ttl, session_expires_at, row.not_after)
    token = signing.sign_access_token(
        _vault(deps).open(row.private_key_enc),
        row.kid,
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


# --- sessions -------------------------------------------------------------------------------

_BAD_LOGIN = "the email or password is not valid"


def _invalid_token() -> OutpostError:
    return OutpostError("the refresh token is not valid", type=ErrorType.INVALID_TOKEN)


async def login(deps: Deps, ctx: RequestContext, cmd: api.Login) -> api.TokenIssued:
    _vault(deps)
    email = users.normalize_email(cmd.email)
    async with deps.uow(PLATFORM_ORG_ID) as uow:
        row = (
            await uow.execute(
                "SELECT u.id, u.organizations, p.password_hash FROM users u"
                " JOIN user_passwords p ON p.user_id = u.id WHERE lower(u.email) = :e",
                {"e": email},
            )
        ).first()
    # The same argon2 work whether or not the email exists (a dummy hash when it does not).
    if not await _passwords(deps).verify(row.password_hash if row else None, cmd.password):
        raise OutpostError(_BAD_LOGIN, type=ErrorType.INVALID_AUTH)
    assert row is not None
    organizations_ = list(row.organizations)
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
    async with deps.uow(org_id) as uow:
        await _require_active_org(uow, org_id)
        role_value = (
            await uow.execute("SELECT role FROM memberships WHERE id = :u", {"u": row.id})
        ).scalar()
        if role_value is None:
            raise AccessDenied("the user is not a member of that organization")
        role = Role(role_value)
        await SESSIONS.execute(
            uow,
            ctx,
            stream_id=session_id,
            command=sessions.StartSession(
                user_id=row.id,
                role=role,
                refresh_token_hash=signing.hash_refresh_token(refresh_token),
                expires_at=expires_at,
            ),
            org_id=org_id,
            now=now,
        )
        issued = await _issue_tokens(
            deps,
            uow,
            user_id=row.id,
            org_id=org_id,
            role=role,
            session_id=session_id,
            session_expires_at=expires_at,
            refresh_token=refresh_token,
            now=now,
        )
        await uow.commit()
    return issued


async def refresh(deps: Deps, ctx: RequestContext, cmd: api.Refresh) -> api.TokenIssued:
    _vault(deps)
    parsed = signing.parse_refresh_token(cmd.refresh_token)
    if parsed is None:
        raise _invalid_token()
    org_id, session_id = parsed
    now = ids.now()
    new_token = signing.new_refresh_token(org_id, session_id)
    async with deps.uow(org_id) as uow:
        state, _envs = await SESSIONS.execute(
            uow,
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
            await uow.commit()
            raise _invalid_token()
        await _require_active_org(uow, org_id)
        issued = await _issue_tokens(
            deps,
            uow,
            user_id=state.user_id,
            org_id=org_id,
            role=state.role,
            session_id=session_id,
            session_expires_at=state.expires_at,
            refresh_token=new_token,
            now=now,
        )
        await uow.commit()
    return issued


async def logout(deps: Deps, ctx: RequestContext, cmd: api.Logout) -> Empty:
    session_id = ctx.principal.session_id
    if ctx.principal.kind is not PrincipalKind.USER or session_id is None:
        raise AccessDenied("logout needs a session's access token")
    async with deps.uow(ctx.org_id) as uow:
        state, _ = await SESSIONS.load(uow, session_id)
        if state is None:
            raise NotFound("no such session")
        await SESSIONS.execute(
            uow,
            ctx,
            stream_id=session_id,
            command=sessions.RevokeSession(reason=sessions.LOGOUT),
            org_id=ctx.org_id,
        )
        await uow.commit()
    return Empty()


# --- OAuth2 clients -------------------------------------------------------------------------


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
    async with deps.uow(ctx.org_id) as uow:
        await _require_active_org(uow, ctx.org_id)
        state, envelopes = await OAUTH_CLIENTS.execute(
            uow,
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
        await uow.commit()
    assert state is not None
    return _client_issued(client_uuid, cmd.name, state, secret, envelopes[0].occurred_at)


async def list_oauth_clients(
    deps: Deps, ctx: RequestContext, q: api.ListOAuthClients
) -> Page[api.OAuthClientView]:
    async with deps.uow(ctx.org_id) as uow:
        return await list_page(uow.conn, queries.OAUTH_CLIENTS, q.query, queries.oauth_client_view)


async def rotate_oauth_client_secret(
    deps: Deps, ctx: RequestContext, cmd: api.RotateOAuthClientSecret
) -> api.OAuthClientIssued:
    secret = signing.new_client_secret()
    async with deps.uow(ctx.org_id) as uow:
        row = (
            await uow.execute(
                "SELECT name, created_at FROM oauth_clients WHERE id = :id", {"id": cmd.id}
            )
        ).first()
        if row is None:
            raise NotFound("no such OAuth client")
        state, _ = await OAUTH_CLIENTS.execute(
            uow,
            ctx,
            stream_id=cmd.id,
            org_id=ctx.org_id,
            command=oauth_clients.RotateSecret(secret_hash=signing.hash_client_secret(secret)),
        )
        await uow.commit()
    assert state is not None
    return _client_issued(cmd.id, row.name, state, secret, row.created_at)


async def delete_oauth_client(deps: Deps, ctx: RequestContext, cmd: api.DeleteOAuthClient) -> Empty:
    async with deps.uow(ctx.org_id) as uow:
        state, _ = await OAUTH_CLIENTS.load(uow, cmd.id)
        if state is None or state.deleted:
            raise NotFound("no such OAuth client")
        await OAUTH_CLIENTS.execute(
            uow,
            ctx,
            stream_id=cmd.id,
            org_id=ctx.org_id,
            command=oauth_clients.DeleteClient(),
        )
        await uow.commit()
    return Empty()


def _invalid_client() -> OutpostError:
    # The gateway answers this as RFC 6749 ``invalid_client`` (401).
    return OutpostError("client authentication failed", type=ErrorType.INVALID_AUTH)


async def issue_client_token(
    deps: Deps, ctx: RequestContext, cmd: api.IssueClientToken
) -> api.ClientTokenIssued:
    """The client-credentials grant. Unknown client, wrong secret, deleted client and a
    suspended organization are all the same ``invalid_client``."""
    vault = _vault(deps)
    presented = signing.hash_client_secret(cmd.client_secret)
    parsed = signing.parse_client_id(cmd.client_id)
    if parsed is None:
        oauth_clients.verify_secret(None, presented)  # the same constant-time work
        raise _invalid_client()
    org_id, client_uuid = parsed
    now = ids.now()
    async with deps.uow(org_id) as uow:
        state, _ = await OAUTH_CLIENTS.load(uow, client_uuid)
        if state is not None and state.client_id != cmd.client_id:
            state = None
        if not oauth_clients.verify_secret(state, presented):
            raise _invalid_client()
        assert state is not None
        status = (
            await uow.execute("SELECT status FROM organizations WHERE id = :id", {"id": org_id})
        ).scalar()
        if status != api.OrganizationStatus.ACTIVE.value:
            raise _invalid_client()
        scopes = oauth_clients.granted_scopes(state, cmd.scope)
        if scopes is None:
            # The gateway answers a validation error on ``scope`` as ``invalid_scope``.
            raise validation_error("scope", "the client may not have the requested scope")
        row = await _active_signing_key(uow, now)
        expires_at = min(now + deps.access_ttl, row.not_after)
        token = signing.sign_client_token(
            vault.open(row.private_key_enc),
            row.kid,
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


Handler = Callable[[Deps, RequestContext, Any], Awaitable[Any]]

HANDLERS: dict[Operation[Any, Any], Handler] = {
    api.CREATE_ORGANIZATION: create_organization,
    api.GET_ORGANIZATION: get_organization,
    api.LIST_ORGANIZATIONS: list_organizations,
    api.SUSPEND_ORGANIZATION: suspend_organization,
    api.REINSTATE_ORGANIZATION: reinstate_organization,
    api.CREATE_API_KEY: create_api_key,
    api.LIST_API_KEYS: list_api_keys,
    api.REVOKE_API_KEY: revoke_api_key,
    api.RECORD_KEY_USAGE: record_key_usage,
    api.CREATE_USER: create_user,
    api.LIST_USERS: list_users,
    api.GET_USER: get_user,
    api.LOGIN: login,
    api.REFRESH: refresh,
    api.LOGOUT: logout,
    api.CREATE_OAUTH_CLIENT: create_oauth_client,
    api.LIST_OAUTH_CLIENTS: list_oauth_clients,
    api.ROTATE_OAUTH_CLIENT_SECRET: rotate_oauth_client_secret,
    api.DELETE_OAUTH_CLIENT: delete_oauth_client,
    api.ISSUE_CLIENT_TOKEN: issue_client_token,
}
