"""Identity's session use cases against real Postgres: users, login, refresh rotation and
reuse, signing-key rotation with overlap, and no secret in any event."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import jwt
import msgspec
import pytest
from cryptography.fernet import Fernet

from outpost_contracts import identity as api
from outpost_contracts.envelope import PLATFORM_ORG_ID, Principal, PrincipalKind, RequestContext
from outpost_contracts.errors import AccessDenied, Conflict, ErrorType, NotFound, OutpostError
from outpost_contracts.tokens import Role
from outpost_identity import bootstrap
from outpost_identity.adapters.passwords import Passwords, make_hasher
from outpost_identity.adapters.projections import PROJECTORS
from outpost_identity.adapters.signing import KeyVault
from outpost_identity.adapters.store import PgIdentity
from outpost_identity.app import handlers
from outpost_kit.cli import migrations_dir
from outpost_kit.db.engine import create_engine
from outpost_kit.db.eventstore import EventCodec
from outpost_kit.db.migrate import upgrade
from outpost_kit.db.provision import provision_service
from outpost_kit.db.uow import UnitOfWorkFactory

pytestmark = pytest.mark.integration
PASSWORD = "a long enough password"


def _ctx(kind: PrincipalKind, org: uuid.UUID, scopes: tuple[str, ...] = ("*",)) -> RequestContext:
    return RequestContext(
        request_id=secrets.token_hex(16),
        org_id=org,
        principal=Principal(kind=kind, id=uuid.uuid4(), org_id=org, scopes=scopes),
    )


@pytest.fixture
async def deps(postgres_dsn: str) -> AsyncIterator[handlers.Deps]:
    dsn = await provision_service(postgres_dsn, "identity", secrets.token_urlsafe(16))
    await upgrade(postgres_dsn, "identity", migrations_dir(bootstrap.__file__))
    engine = create_engine(dsn, "identity", pool_size=2)
    try:
        yield handlers.Deps(
            uow=PgIdentity(engine, EventCodec(bootstrap.EVENT_TYPES), PROJECTORS),
            passwords=Passwords(make_hasher(time_cost=1, memory_kib=8 * 1024, parallelism=1)),
            vault=KeyVault(Fernet.generate_key().decode()),
        )
    finally:
        await engine.dispose()


def _sql(deps: handlers.Deps) -> UnitOfWorkFactory:
    """The kit's unit of work under the use cases' port, for checks in SQL."""
    assert isinstance(deps.uow, PgIdentity)
    return deps.uow


async def _org_and_user(deps: handlers.Deps, role: Role = Role.MEMBER) -> tuple[uuid.UUID, str]:
    operator = _ctx(PrincipalKind.OPERATOR, PLATFORM_ORG_ID)
    org = await handlers.create_organization(
        deps, operator, api.CreateOrganization(name=f"org-{uuid.uuid4().hex[:8]}")
    )
    email = f"U-{uuid.uuid4().hex[:8]}@example.com"
    key_ctx = _ctx(PrincipalKind.API_KEY, org.id)
    view = await handlers.create_user(
        deps, key_ctx, api.CreateUser(email=email, password=PASSWORD, role=role)
    )
    assert view.email == email.lower() and view.role is role
    assert (await handlers.get_user(deps, key_ctx, api.GetUser(id=view.id))).id == view.id
    return org.id, email


async def _public_key(deps: handlers.Deps, kid: str) -> str:
    async with _sql(deps)(PLATFORM_ORG_ID) as uow:
        pem = (
            await uow.execute("SELECT public_key_pem FROM signing_keys WHERE kid = :k", {"k": kid})
        ).scalar()
    return str(pem)


async def test_login_refresh_reuse_and_logout(deps: handlers.Deps) -> None:
    await handlers.ensure_signing_key(deps)
    org, email = await _org_and_user(deps)
    anon = _ctx(PrincipalKind.ANONYMOUS, PLATFORM_ORG_ID)
    issued = await handlers.login(deps, anon, api.Login(email=email.upper(), password=PASSWORD))
    kid = jwt.get_unverified_header(issued.access_token)["kid"]
    claims = jwt.decode(
        issued.access_token,
        await _public_key(deps, kid),
        algorithms=["EdDSA"],
        audience="outpost-api",
        issuer="outpost-identity",
    )
    assert claims["org"] == str(org) and claims["role"] == "member"
    assert issued.expires_in == 900

    second = await handlers.refresh(deps, anon, api.Refresh(refresh_token=issued.refresh_token))
    with pytest.raises(OutpostError) as reused:
        await handlers.refresh(deps, anon, api.Refresh(refresh_token=issued.refresh_token))
    assert reused.value.type is ErrorType.INVALID_TOKEN
    with pytest.raises(OutpostError) as family:  # the reuse revoked the newer token too
        await handlers.refresh(deps, anon, api.Refresh(refresh_token=second.refresh_token))
    assert family.value.type is ErrorType.INVALID_TOKEN

    third = await handlers.login(deps, anon, api.Login(email=email, password=PASSWORD))
    sid = uuid.UUID(jwt.decode(third.access_token, options={"verify_signature": False})["sid"])
    user_ctx = RequestContext(
        request_id=secrets.token_hex(16),
        org_id=org,
        principal=Principal(kind=PrincipalKind.USER, id=uuid.uuid4(), org_id=org, session_id=sid),
    )
    await handlers.logout(deps, user_ctx, api.Logout())
    with pytest.raises(OutpostError):
        await handlers.refresh(deps, anon, api.Refresh(refresh_token=third.refresh_token))

    for login in (
        api.Login(email=email, password="wrong password!"),
        api.Login(email=f"nobody-{uuid.uuid4().hex}@example.com", password=PASSWORD),
    ):
        with pytest.raises(OutpostError) as bad:
            await handlers.login(deps, anon, login)
        assert bad.value.type is ErrorType.INVALID_AUTH
        assert str(bad.value) == "the email or password is not valid"

    async with _sql(deps)(PLATFORM_ORG_ID) as uow:
        leaked = (
            await uow.execute(
                "SELECT count(*) FROM events WHERE data::text ILIKE '%argon2%'"
                " OR data::text ILIKE :pw",
                {"pw": f"%{PASSWORD}%"},
            )
        ).scalar()
    assert leaked == 0


async def test_an_email_known_elsewhere_is_answered_as_a_new_one(deps: handlers.Deps) -> None:
    """``bola``: organization B adds an email that already belongs to a person of
    organization A, and a new email; the two answers are alike in every field a caller could
    compare (status, shape, an id and a time of now, no error) (decision 78). The existing
    person keeps their password (B's is not stored), logs in to either organization naming
    it, and is known to each by that organization's own id."""
    await handlers.ensure_signing_key(deps, force=True)  # one this test's vault opens
    org_a, email = await _org_and_user(deps)
    operator = _ctx(PrincipalKind.OPERATOR, PLATFORM_ORG_ID)
    org_b = (
        await handlers.create_organization(
            deps, operator, api.CreateOrganization(name=f"org-{uuid.uuid4().hex[:8]}")
        )
    ).id
    in_b = _ctx(PrincipalKind.API_KEY, org_b)
    fresh_email = f"new-{uuid.uuid4().hex[:8]}@example.com"
    known = await handlers.create_user(
        deps, in_b, api.CreateUser(email=email, password="b's choice of pw", role=Role.VIEWER)
    )
    fresh = await handlers.create_user(
        deps, in_b, api.CreateUser(email=fresh_email, password=PASSWORD, role=Role.VIEWER)
    )
    assert type(known) is type(fresh)
    assert set(msgspec.structs.asdict(known)) == set(msgspec.structs.asdict(fresh))
    assert (known.email, known.role, known.version) == (email.lower(), Role.VIEWER, 1)
    assert (fresh.role, fresh.version) == (Role.VIEWER, 1)
    # Ids are new UUIDv7s and times are the membership's: the known person's is not older.
    assert known.id.version == fresh.id.version == 7
    assert known.id < fresh.id and known.created_at <= fresh.created_at
    in_a = _ctx(PrincipalKind.API_KEY, org_a)
    a_view = (await handlers.list_users(deps, in_a, api.ListUsers())).data[0]
    assert a_view.id != known.id and a_view.created_at < known.created_at
    # B sees only B's membership of the person.
    listed = (await handlers.list_users(deps, in_b, api.ListUsers())).data
    assert {u.id for u in listed} == {known.id, fresh.id}
    assert (await handlers.get_user(deps, in_b, api.GetUser(id=known.id))).id == known.id
    with pytest.raises(NotFound):
        await handlers.get_user(deps, in_b, api.GetUser(id=a_view.id))
    # Adding the person to B again is B's own business: a conflict.
    with pytest.raises(Conflict):
        await handlers.create_user(
            deps, in_b, api.CreateUser(email=email.upper(), password=PASSWORD, role=Role.MEMBER)
        )

    anon = _ctx(PrincipalKind.ANONYMOUS, PLATFORM_ORG_ID)
    with pytest.raises(OutpostError) as bad:  # B's password was not stored
        await handlers.login(deps, anon, api.Login(email=email, password="b's choice of pw"))
    assert bad.value.type is ErrorType.INVALID_AUTH
    with pytest.raises(OutpostError) as which:
        await handlers.login(deps, anon, api.Login(email=email, password=PASSWORD))
    assert which.value.type is ErrorType.VALIDATION_ERROR  # two organizations: name one
    for org, member_id, role in ((org_a, a_view.id, "member"), (org_b, known.id, "viewer")):
        issued = await handlers.login(
            deps, anon, api.Login(email=email, password=PASSWORD, organization=org)
        )
        claims = jwt.decode(issued.access_token, options={"verify_signature": False})
        assert (claims["org"], claims["sub"], claims["role"]) == (str(org), str(member_id), role)


async def test_a_narrow_key_cannot_make_an_owner(deps: handlers.Deps) -> None:
    org, _ = await _org_and_user(deps)
    narrow = _ctx(PrincipalKind.API_KEY, org, scopes=("users:write",))
    with pytest.raises(AccessDenied):
        await handlers.create_user(
            deps,
            narrow,
            api.CreateUser(email="boss@example.com", password=PASSWORD, role=Role.OWNER),
        )


async def test_rotation_keeps_the_previous_key_verifying_for_one_token_lifetime(
    deps: handlers.Deps,
) -> None:
    first = await handlers.ensure_signing_key(deps)
    assert await handlers.ensure_signing_key(deps) == first  # idempotent
    second = await handlers.ensure_signing_key(deps, force=True)
    assert second != first
    async with _sql(deps)(PLATFORM_ORG_ID) as uow:
        rows = {
            r.kid: r
            for r in await uow.execute(
                "SELECT kid, retired_at, verify_until FROM signing_keys WHERE kid IN (:a, :b)",
                {"a": first, "b": second},
            )
        }
        active = (
            await uow.execute("SELECT count(*) FROM signing_keys WHERE retired_at IS NULL")
        ).scalar()
    assert active == 1 and rows[second].retired_at is None
    old = rows[first]
    assert old.verify_until - old.retired_at == pytest.approx(
        timedelta(minutes=15), abs=timedelta(seconds=2)
    )


async def test_revoking_the_previous_key_ends_its_overlap_at_once(deps: handlers.Deps) -> None:
    first = await handlers.ensure_signing_key(deps, force=True)
    await handlers.ensure_signing_key(deps, force=True, revoke_previous=True)
    async with _sql(deps)(PLATFORM_ORG_ID) as uow:
        row = (
            await uow.execute(
                "SELECT retired_at, verify_until FROM signing_keys WHERE kid = :k", {"k": first}
            )
        ).first()
    assert row.verify_until <= row.retired_at  # no overlap: refused from the event on


async def test_key_usage_reports_set_last_used_at_forward_only_per_tenant(
    deps: handlers.Deps,
) -> None:
    operator = _ctx(PrincipalKind.OPERATOR, PLATFORM_ORG_ID)
    orgs = [
        await handlers.create_organization(
            deps, operator, api.CreateOrganization(name=f"org-{uuid.uuid4().hex[:8]}")
        )
        for _ in range(2)
    ]
    keys = [
        await handlers.create_api_key(
            deps, _ctx(PrincipalKind.OPERATOR, org.id), api.CreateApiKey(name="k")
        )
        for org in orgs
    ]
    system = _ctx(PrincipalKind.SYSTEM, PLATFORM_ORG_ID)
    t0 = keys[0].created_at + timedelta(minutes=1)
    report = api.RecordKeyUsage(
        uses=[
            api.KeyUse(id=keys[0].id, org_id=orgs[0].id, at=t0),
            api.KeyUse(id=keys[1].id, org_id=orgs[1].id, at=t0 + timedelta(seconds=5)),
        ]
    )
    await handlers.record_key_usage(deps, system, report)
    # An older report (another gateway, late) never moves it back.
    older = api.KeyUse(id=keys[0].id, org_id=orgs[0].id, at=t0 - timedelta(seconds=30))
    await handlers.record_key_usage(deps, system, api.RecordKeyUsage(uses=[older]))
    # A report naming a key under the wrong organization changes nothing (RLS).
    wrong = api.KeyUse(id=keys[1].id, org_id=orgs[0].id, at=t0 + timedelta(hours=1))
    await handlers.record_key_usage(deps, system, api.RecordKeyUsage(uses=[wrong]))

    for org, key, expected in (
        (orgs[0], keys[0], t0),
        (orgs[1], keys[1], t0 + timedelta(seconds=5)),
    ):
        page = await handlers.list_api_keys(
            deps, _ctx(PrincipalKind.OPERATOR, org.id), api.ListApiKeys()
        )
        (view,) = [k for k in page.data if k.id == key.id]
        assert view.last_used_at == expected
