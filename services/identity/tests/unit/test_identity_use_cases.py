"""Identity's use cases on the fake unit of work (``identity_fakes.py``): what they load,
decide and append through the port, without Postgres (ADR 0086). The SQL behind the port is
the integration tests' (``tests/integration/test_identity_sessions.py``) and the e2e tests'."""

from __future__ import annotations

import secrets
import uuid
from datetime import timedelta

import jwt
import pytest
from cryptography.fernet import Fernet
from identity_fakes import FakeIdentity

from outpost_contracts import identity as api
from outpost_contracts.envelope import PLATFORM_ORG_ID, Principal, PrincipalKind, RequestContext
from outpost_contracts.errors import AccessDenied, Conflict, ErrorType, NotFound, OutpostError
from outpost_contracts.tokens import Role
from outpost_identity.adapters.passwords import Passwords, make_hasher
from outpost_identity.adapters.signing import KeyVault
from outpost_identity.app import handlers
from outpost_identity.app.deps import Deps

pytestmark = pytest.mark.unit
PASSWORD = "a long enough password"
OPERATOR = RequestContext(
    request_id="r",
    org_id=PLATFORM_ORG_ID,
    principal=Principal(kind=PrincipalKind.OPERATOR, id=uuid.uuid4(), org_id=PLATFORM_ORG_ID),
)
ANON = RequestContext(
    request_id="r",
    org_id=PLATFORM_ORG_ID,
    principal=Principal(kind=PrincipalKind.ANONYMOUS, id=uuid.uuid4(), org_id=PLATFORM_ORG_ID),
)


def _ctx(org: uuid.UUID, scopes: tuple[str, ...] = ("*",)) -> RequestContext:
    return RequestContext(
        request_id=secrets.token_hex(16),
        org_id=org,
        principal=Principal(kind=PrincipalKind.API_KEY, id=uuid.uuid4(), org_id=org, scopes=scopes),
    )


@pytest.fixture
def uow() -> FakeIdentity:
    return FakeIdentity()


@pytest.fixture
def deps(uow: FakeIdentity) -> Deps:
    return Deps(
        uow=uow,
        passwords=Passwords(make_hasher(time_cost=1, memory_kib=8 * 1024, parallelism=1)),
        vault=KeyVault(Fernet.generate_key().decode()),
    )


async def _org(deps: Deps, name: str | None = None) -> uuid.UUID:
    cmd = api.CreateOrganization(name=name or f"org-{uuid.uuid4().hex[:8]}")
    return (await handlers.create_organization(deps, OPERATOR, cmd)).id


async def _user(deps: Deps, org: uuid.UUID, email: str, role: Role = Role.MEMBER) -> api.UserView:
    cmd = api.CreateUser(email=email, password=PASSWORD, role=role)
    return await handlers.create_user(deps, _ctx(org), cmd)


async def test_an_organization_name_taken_in_any_case_is_a_conflict(
    deps: Deps, uow: FakeIdentity
) -> None:
    first = await _org(deps, "Acme")
    with pytest.raises(Conflict, match="'ACME' already exists"):
        await _org(deps, "ACME")
    assert list(uow.world.organizations) == [first]
    assert (
        await handlers.get_organization(deps, _ctx(first), api.GetOrganization(id=first))
    ).name == "Acme"
    with pytest.raises(NotFound):  # another organization's credential does not see it
        await handlers.get_organization(deps, _ctx(uuid.uuid4()), api.GetOrganization(id=first))


async def test_a_suspended_organization_gets_no_new_credentials(deps: Deps) -> None:
    org = await _org(deps)
    await _user(deps, org, "someone@example.com")
    view = await handlers.suspend_organization(
        deps, OPERATOR, api.SuspendOrganizationById(id=org, reason="unpaid")
    )
    assert view.status is api.OrganizationStatus.SUSPENDED and view.version == 2
    with pytest.raises(AccessDenied, match="suspended"):
        await handlers.create_api_key(deps, _ctx(org), api.CreateApiKey(name="k"))
    with pytest.raises(AccessDenied, match="suspended"):
        await _user(deps, org, "other@example.com")
    with pytest.raises(AccessDenied, match="suspended"):
        await handlers.create_oauth_client(
            deps, _ctx(org), api.CreateOAuthClient(name="c", scopes=["devices:read"])
        )
    await handlers.ensure_signing_key(deps)
    with pytest.raises(AccessDenied, match="suspended"):
        await handlers.login(deps, ANON, api.Login(email="someone@example.com", password=PASSWORD))
    back = await handlers.reinstate_organization(
        deps, OPERATOR, api.ReinstateOrganizationById(id=org)
    )
    assert back.status is api.OrganizationStatus.ACTIVE
    await handlers.login(deps, ANON, api.Login(email="someone@example.com", password=PASSWORD))


async def test_key_usage_only_moves_forward_in_each_tenant(deps: Deps, uow: FakeIdentity) -> None:
    org_a, org_b = await _org(deps), await _org(deps)
    a = await handlers.create_api_key(deps, _ctx(org_a), api.CreateApiKey(name="a"))
    b = await handlers.create_api_key(deps, _ctx(org_b), api.CreateApiKey(name="b"))
    t0 = uow.world.now
    system = _ctx(PLATFORM_ORG_ID)
    uses = [
        api.KeyUse(id=a.id, org_id=org_a, at=t0 + timedelta(seconds=30)),
        api.KeyUse(id=b.id, org_id=org_b, at=t0 + timedelta(seconds=10)),
        api.KeyUse(id=a.id, org_id=org_a, at=t0 + timedelta(seconds=20)),  # an older report
    ]
    await handlers.record_key_usage(deps, system, api.RecordKeyUsage(uses=uses))
    # a key reported under the wrong organization is not touched (row-level security)
    wrong = api.KeyUse(id=b.id, org_id=org_a, at=t0 + timedelta(minutes=5))
    await handlers.record_key_usage(deps, system, api.RecordKeyUsage(uses=[wrong]))
    used = {k.view.id: k.view.last_used_at for k in uow.world.api_keys.values()}
    assert used == {a.id: t0 + timedelta(seconds=30), b.id: t0 + timedelta(seconds=10)}


async def test_the_operator_key_is_valid_until_revoked(deps: Deps) -> None:
    key = await handlers.issue_operator_key(deps, "platform operator")
    assert await handlers.operator_key_valid(deps, key)
    assert not await handlers.operator_key_valid(deps, key[:-2] + "xx")
    assert not await handlers.operator_key_valid(deps, "not a key")
    page = await handlers.list_api_keys(deps, OPERATOR, api.ListApiKeys())
    await handlers.revoke_api_key(deps, OPERATOR, api.RevokeApiKey(id=page.data[0].id))
    assert not await handlers.operator_key_valid(deps, key)


async def test_a_known_person_keeps_their_password_and_is_added_once(
    deps: Deps, uow: FakeIdentity
) -> None:
    org_a, org_b = await _org(deps), await _org(deps)
    in_a = await _user(deps, org_a, "Person@Example.com")
    cmd = api.CreateUser(email="person@example.com", password="b's choice of pw", role=Role.VIEWER)
    in_b = await handlers.create_user(deps, _ctx(org_b), cmd)
    assert in_a.id != in_b.id and in_b.email == "person@example.com"
    assert len(uow.world.users) == len(uow.world.passwords) == 1  # b's password not stored
    with pytest.raises(Conflict, match="already a member"):
        await handlers.create_user(deps, _ctx(org_b), cmd)
    assert [u.id for u in (await handlers.list_users(deps, _ctx(org_b), api.ListUsers())).data] == [
        in_b.id
    ]
    with pytest.raises(NotFound):  # org b does not see org a's membership
        await handlers.get_user(deps, _ctx(org_b), api.GetUser(id=in_a.id))


async def test_a_registration_racing_ours_adds_the_person_it_registered(
    deps: Deps, uow: FakeIdentity
) -> None:
    """The email is registered between our look-up and our append: the users projection
    refuses ours (``Taken``) and the use case adds the person now known, once."""
    org_a, org_b = await _org(deps), await _org(deps)
    await _user(deps, org_a, "racer@example.com")
    uow.world.racing_email = "racer@example.com"
    view = await _user(deps, org_b, "racer@example.com", Role.VIEWER)
    assert uow.world.racing_email is None  # the race did happen
    (user_id,) = uow.world.users
    assert uow.world.memberships[(org_b, user_id)].id == view.id
    assert len(uow.world.passwords) == 1


async def test_login_names_the_membership_and_refresh_reuse_revokes_the_family(
    deps: Deps, uow: FakeIdentity
) -> None:
    org_a, org_b = await _org(deps), await _org(deps)
    in_a = await _user(deps, org_a, "two@example.com")
    await _user(deps, org_b, "two@example.com", Role.VIEWER)
    await handlers.ensure_signing_key(deps)
    bad = api.Login(email="two@example.com", password="wrong password!")
    with pytest.raises(OutpostError) as refused:
        await handlers.login(deps, ANON, bad)
    assert refused.value.type is ErrorType.INVALID_AUTH
    with pytest.raises(OutpostError) as which:
        await handlers.login(deps, ANON, api.Login(email="two@example.com", password=PASSWORD))
    assert which.value.type is ErrorType.VALIDATION_ERROR
    login = api.Login(email="TWO@example.com", password=PASSWORD, organization=org_a)
    issued = await handlers.login(deps, ANON, login)
    claims = jwt.decode(issued.access_token, options={"verify_signature": False})
    assert (claims["org"], claims["sub"], claims["role"]) == (str(org_a), str(in_a.id), "member")

    second = await handlers.refresh(deps, ANON, api.Refresh(refresh_token=issued.refresh_token))
    for spent in (issued.refresh_token, second.refresh_token):  # reuse, then the family
        with pytest.raises(OutpostError) as reused:
            await handlers.refresh(deps, ANON, api.Refresh(refresh_token=spent))
        assert reused.value.type is ErrorType.INVALID_TOKEN

    third = await handlers.login(deps, ANON, login)
    sid = uuid.UUID(jwt.decode(third.access_token, options={"verify_signature": False})["sid"])
    user = RequestContext(
        request_id="r",
        org_id=org_a,
        principal=Principal(kind=PrincipalKind.USER, id=in_a.id, org_id=org_a, session_id=sid),
    )
    await handlers.logout(deps, user, api.Logout())
    with pytest.raises(OutpostError):
        await handlers.refresh(deps, ANON, api.Refresh(refresh_token=third.refresh_token))


async def test_signing_keys_rotate_with_an_overlap_or_none(deps: Deps, uow: FakeIdentity) -> None:
    first = await handlers.ensure_signing_key(deps)
    assert await handlers.ensure_signing_key(deps) == first  # idempotent
    now = uow.world.now
    second = await handlers.ensure_signing_key(deps, force=True, now=now)
    third = await handlers.ensure_signing_key(deps, force=True, revoke_previous=True, now=now)
    rows = {row.kid: row for row in uow.world.signing_keys.values()}
    assert len({first, second, third}) == 3
    assert rows[first].verify_until == now + deps.access_ttl  # one token lifetime of overlap
    assert rows[second].verify_until == now  # revoked: no overlap
    assert [k for k, r in rows.items() if r.retired_at is None] == [third]
    assert set(uow.world.signing_secrets) == {first, second, third}
    # near its end (within the renewal margin), the key is renewed without force
    assert await handlers.ensure_signing_key(deps, now=now + timedelta(days=89)) != third


async def test_the_client_credentials_grant(deps: Deps) -> None:
    org = await _org(deps)
    await handlers.ensure_signing_key(deps)
    client = await handlers.create_oauth_client(
        deps, _ctx(org), api.CreateOAuthClient(name="c", scopes=["devices:read", "readings:read"])
    )
    grant = api.IssueClientToken(
        client_id=client.client_id, client_secret=client.client_secret, scope=("devices:read",)
    )
    issued = await handlers.issue_client_token(deps, ANON, grant)
    assert issued.scope == "devices:read"
    wrong = api.IssueClientToken(client_id=client.client_id, client_secret="x" * 40)
    with pytest.raises(OutpostError) as refused:
        await handlers.issue_client_token(deps, ANON, wrong)
    assert refused.value.type is ErrorType.INVALID_AUTH
    wider = api.IssueClientToken(
        client_id=client.client_id, client_secret=client.client_secret, scope=("users:write",)
    )
    with pytest.raises(OutpostError) as scope:
        await handlers.issue_client_token(deps, ANON, wider)
    assert scope.value.type is ErrorType.VALIDATION_ERROR

    rotated = await handlers.rotate_oauth_client_secret(
        deps, _ctx(org), api.RotateOAuthClientSecret(id=client.id)
    )
    assert rotated.created_at == client.created_at and rotated.client_secret != client.client_secret
    with pytest.raises(OutpostError):  # the old secret no longer works
        await handlers.issue_client_token(deps, ANON, grant)
    await handlers.suspend_organization(deps, OPERATOR, api.SuspendOrganizationById(id=org))
    fresh = api.IssueClientToken(client_id=client.client_id, client_secret=rotated.client_secret)
    with pytest.raises(OutpostError) as suspended:
        await handlers.issue_client_token(deps, ANON, fresh)
    assert suspended.value.type is ErrorType.INVALID_AUTH
    await handlers.delete_oauth_client(deps, _ctx(org), api.DeleteOAuthClient(id=client.id))
    with pytest.raises(NotFound):
        await handlers.rotate_oauth_client_secret(
            deps, _ctx(org), api.RotateOAuthClientSecret(id=client.id)
        )
