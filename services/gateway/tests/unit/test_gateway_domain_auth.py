from __future__ import annotations

from datetime import timedelta
from uuid import uuid4

import msgspec
import pytest
from gateway_testkit import NOW, bearer, build_world, envelope, key_created

from outpost_contracts.credentials import scope_covers
from outpost_contracts.envelope import PLATFORM_ORG_ID, PrincipalKind
from outpost_contracts.errors import ErrorType, OutpostError
from outpost_contracts.identity import (
    ApiKeyRevoked,
    OrganizationReinstated,
    OrganizationSuspended,
)
from outpost_contracts.tokens import Role, scopes_of
from outpost_gateway.adapters.identity_follower import decode_identity_event
from outpost_gateway.domain.auth import authenticate
from outpost_gateway.domain.credentials import CredentialCache, evolve
from outpost_gateway.domain.policy import (
    OPERATOR,
    PUBLIC,
    ROUTE_POLICIES,
    authorize,
    grants,
    resolve_organization,
)

pytestmark = pytest.mark.unit


def _auth(header: str | None, world=None):  # type: ignore[no-untyped-def]
    world = world or build_world()
    return authenticate(header, world.cache, NOW)


def _type(exc: pytest.ExceptionInfo[OutpostError]) -> ErrorType:
    return exc.value.type


# --- the cache -----------------------------------------------------------------------------


def test_evolve_records_keys_by_prefix_and_revocation_keeps_the_record() -> None:
    cache = CredentialCache()
    org = uuid4()
    key, created = key_created(org, ("devices:read",))
    evolve(cache, created)
    record = cache.key(key.prefix)
    assert record is not None
    assert (record.id, record.org_id, record.scopes, record.revoked) == (
        key.id,
        org,
        ("devices:read",),
        False,
    )
    evolve(cache, envelope(org, key.id, ApiKeyRevoked(prefix=key.prefix), 2))
    assert cache.key(key.prefix).revoked is True  # type: ignore[union-attr]
    assert cache.applied == 2


def test_evolve_tracks_organizations_and_suspension() -> None:
    world = build_world()
    assert world.cache.organization_exists(world.org_a)
    assert not world.cache.organization_suspended(world.org_a)
    assert world.cache.organization_suspended(world.org_b)


def test_a_reinstated_organizations_keys_authenticate_again() -> None:
    """docs/design/reliability.md ``suspension``: lifting the suspension (decision 76), as the
    gateway's credential cache hears it from the IDENTITY stream."""
    world = build_world()
    with pytest.raises(OutpostError) as exc:
        _auth(f"Bearer {world.suspended.key}", world)
    assert exc.value.type is ErrorType.ACCESS_DENIED
    reinstated = envelope(world.org_b, world.org_b, OrganizationReinstated(), 3)
    assert decode_identity_event(msgspec.json.encode(reinstated)).data == reinstated.data  # type: ignore[union-attr]
    evolve(world.cache, reinstated)
    assert not world.cache.organization_suspended(world.org_b)
    assert _auth(f"Bearer {world.suspended.key}", world).org_id == world.org_b


def test_revoking_an_unknown_prefix_is_ignored() -> None:
    cache = CredentialCache()
    evolve(cache, envelope(uuid4(), uuid4(), ApiKeyRevoked(prefix="nothere")))
    assert cache.keys == {}


def test_identity_events_decode_from_their_envelope_json() -> None:
    org = uuid4()
    key, created = key_created(org)
    decoded = decode_identity_event(msgspec.json.encode(created))
    assert decoded is not None
    assert decoded.data == created.data
    assert (decoded.org_id, decoded.stream_id) == (org, key.id)
    suspended = envelope(org, org, OrganizationSuspended())
    assert decode_identity_event(msgspec.json.encode(suspended)).data == suspended.data  # type: ignore[union-attr]


def test_identity_events_the_gateway_does_not_need_are_skipped() -> None:
    raw = msgspec.json.encode(envelope(uuid4(), uuid4(), ApiKeyRevoked(prefix="x")))
    other = raw.replace(b"identity.ApiKeyRevoked.v1", b"identity.UserInvited.v1")
    assert decode_identity_event(other) is None


# --- authentication ------------------------------------------------------------------------


def test_an_org_key_authenticates_as_an_api_key_principal() -> None:
    world = build_world()
    p = _auth(bearer(world.reader)["Authorization"], world)
    assert p.kind is PrincipalKind.API_KEY
    assert (p.id, p.org_id, p.scopes) == (world.reader.id, world.org_a, ("devices:read",))


def test_the_operator_key_authenticates_as_the_operator() -> None:
    world = build_world()
    p = _auth(bearer(world.operator)["Authorization"], world)
    assert p.kind is PrincipalKind.OPERATOR
    assert p.org_id == PLATFORM_ORG_ID


@pytest.mark.parametrize("header", [None, "", "Basic abc", "Bearer", "Bearer ", "Bearer a b"])
def test_missing_or_garbled_headers_are_invalid_auth(header: str | None) -> None:
    with pytest.raises(OutpostError) as exc:
        _auth(header)
    assert _type(exc) is ErrorType.INVALID_AUTH


def test_other_bearer_tokens_are_invalid_token() -> None:
    with pytest.raises(OutpostError) as exc:
        _auth("Bearer eyJhbGciOiJIUzI1NiJ9.e30.sig")
    assert _type(exc) is ErrorType.INVALID_TOKEN


@pytest.mark.parametrize("which", ["revoked", "expired", "unknown", "wrong", "short"])
def test_unusable_keys_are_invalid_apikey(which: str) -> None:
    world = build_world()
    if which == "unknown":
        token = key_created(world.org_a)[0].key
    elif which == "wrong":  # right prefix, wrong secret
        token = world.full.key[:-1] + ("A" if world.full.key[-1] != "A" else "B")
    elif which == "short":
        token = "sk_live_abc"
    else:
        token = getattr(world, which).key
    with pytest.raises(OutpostError) as exc:
        _auth(f"Bearer {token}", world)
    assert _type(exc) is ErrorType.INVALID_APIKEY


def test_a_suspended_organizations_key_is_access_denied() -> None:
    """Genuine but refused: 403 access_denied (docs/api.md), not 401; a wrong secret for the same
    prefix is still 401 (suspension tells nothing to someone without the key)."""
    world = build_world()
    with pytest.raises(OutpostError) as exc:
        _auth(f"Bearer {world.suspended.key}", world)
    assert _type(exc) is ErrorType.ACCESS_DENIED
    assert "suspended" in exc.value.message
    wrong = world.suspended.key[:-1] + ("A" if world.suspended.key[-1] != "A" else "B")
    with pytest.raises(OutpostError) as exc:
        _auth(f"Bearer {wrong}", world)
    assert _type(exc) is ErrorType.INVALID_APIKEY


def test_a_key_is_valid_until_its_expiry() -> None:
    world = build_world()
    key, created = key_created(world.org_a, expires_at=NOW + timedelta(seconds=1))
    evolve(world.cache, created)
    assert authenticate(bearer(key)["Authorization"], world.cache, NOW).id == key.id
    with pytest.raises(OutpostError):
        authenticate(bearer(key)["Authorization"], world.cache, NOW + timedelta(seconds=1))


# --- authorization and tenancy -------------------------------------------------------------


@pytest.mark.parametrize(
    ("granted", "required", "ok"),
    [
        (("*",), "devices:write", True),
        (("devices:*",), "devices:write", True),
        (("devices:*",), "readings:read", False),
        (("devices:read",), "devices:read", True),
        (("devices:read",), "devices:write", False),
        ((), "devices:read", False),
        (("devices:read", "api-keys:write"), "api-keys:write", True),
    ],
)
def test_scope_matching(granted: tuple[str, ...], required: str, ok: bool) -> None:
    assert grants(granted, required) is ok


def test_org_keys_are_denied_operator_routes_and_missing_scopes() -> None:
    world = build_world()
    full = _auth(bearer(world.full)["Authorization"], world)
    reader = _auth(bearer(world.reader)["Authorization"], world)
    with pytest.raises(OutpostError) as exc:
        authorize(full, OPERATOR)
    assert _type(exc) is ErrorType.ACCESS_DENIED
    with pytest.raises(OutpostError):
        authorize(reader, "devices:write")
    authorize(reader, "devices:read")
    authorize(_auth(bearer(world.operator)["Authorization"], world), "devices:write")


def test_tenancy_of_org_keys_and_the_operator() -> None:
    world = build_world()
    org_key = _auth(bearer(world.full)["Authorization"], world)
    operator = _auth(bearer(world.operator)["Authorization"], world)
    assert resolve_organization(org_key, "devices:read", None, world.cache) == world.org_a
    assert (
        resolve_organization(org_key, "devices:read", str(world.org_a), world.cache) == world.org_a
    )
    with pytest.raises(OutpostError) as exc:
        resolve_organization(org_key, "devices:read", str(world.org_b), world.cache)
    assert _type(exc) is ErrorType.ACCESS_DENIED
    assert resolve_organization(operator, OPERATOR, None, world.cache) == PLATFORM_ORG_ID
    assert (
        resolve_organization(operator, "devices:read", str(world.org_b), world.cache) == world.org_b
    )
    with pytest.raises(OutpostError) as exc:
        resolve_organization(operator, "devices:read", "not-a-uuid", world.cache)
    assert _type(exc) is ErrorType.VALIDATION_ERROR
    assert exc.value.fields[0].name == "X-Organization"
    with pytest.raises(OutpostError) as exc:
        resolve_organization(operator, "devices:read", str(uuid4()), world.cache)
    assert _type(exc) is ErrorType.NOT_FOUND
    with pytest.raises(OutpostError) as exc:
        resolve_organization(operator, "devices:read", None, world.cache)
    assert _type(exc) is ErrorType.VALIDATION_ERROR


def test_every_scope_in_the_policy_table_is_well_formed() -> None:
    for (method, path), required in ROUTE_POLICIES.items():
        assert method in {"GET", "POST", "PUT", "PATCH", "DELETE"}
        assert path.startswith("/")
        assert required in {"public", "operator", "unrecognized", "authenticated"} or (
            required.count(":") == 1 and required.split(":")[1] in {"read", "write"}
        )


# What each role is for (tokens.ROLE_SCOPES): a member works with devices, readings, alerting
# and exports; a viewer reads what any role reads. Organization settings, users, keys and the
# quarantine are an admin's.
MEMBER_WORK = (
    "/api/v1/devices",
    "/api/v1/groups",
    "/api/v1/sites",
    "/api/v1/readings",
    "/api/v1/annotation",
    "/api/v1/alert-rules",
    "/api/v1/alerts",
    "/api/v1/notification-channels",
    "/api/v1/events",
    "/api/v1/exports",
)
ADMIN_ONLY = ("/api/v1/readings/settings",)


@pytest.mark.parametrize(
    ("method", "path"),
    sorted(
        (m, p)
        for (m, p) in ROUTE_POLICIES
        if p.startswith(MEMBER_WORK) and not p.startswith(ADMIN_ONLY) and m != "OPTIONS"
    ),
)
def test_a_member_may_do_the_work_of_each_area(method: str, path: str) -> None:
    required = ROUTE_POLICIES[(method, path)]
    if required in (OPERATOR, PUBLIC):
        return
    assert any(scope_covers(g, required) for g in scopes_of(Role.MEMBER)), required
    if method == "GET":
        assert any(scope_covers(g, required) for g in scopes_of(Role.VIEWER)), required


@pytest.mark.parametrize(("method", "path"), sorted(ROUTE_POLICIES))
def test_an_admin_may_call_every_organization_route(method: str, path: str) -> None:
    """``bfla``: an admin holds ``*:read`` and ``*:write``, not ``*``
    (decision 78), and still reaches every route an owner does: only what it may grant
    differs."""
    required = ROUTE_POLICIES[(method, path)]
    if required in (OPERATOR, PUBLIC, "unrecognized", "authenticated"):
        return
    assert grants(scopes_of(Role.ADMIN), required), required
    assert "*" not in scopes_of(Role.ADMIN)
