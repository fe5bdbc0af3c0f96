"""Users, memberships, signing keys and sessions: given events, when a command, then events."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest

from outpost_contracts.credentials import covers, scope_covers
from outpost_contracts.errors import (
    AccessDenied,
    Conflict,
    ErrorType,
    OutpostError,
    ValidationFailed,
)
from outpost_contracts.identity import (
    MembershipGranted,
    SessionRefreshed,
    SessionRevoked,
    SessionStarted,
    SigningKeyPublished,
    SigningKeyRetired,
    UserCreated,
)
from outpost_contracts.tokens import ROLE_SCOPES, Role, scopes_of
from outpost_identity.adapters import signing
from outpost_identity.domain import api_keys, oauth_clients, sessions, signing_keys, users

pytestmark = pytest.mark.unit
NOW = datetime(2026, 11, 21, tzinfo=UTC)


def given(evolve, events):  # type: ignore[no-untyped-def]
    state = None
    sid = uuid4()
    for e in events:
        state = evolve(state, e, sid)
    return state


# --- users and memberships -------------------------------------------------------------------


def test_register_user_normalizes_the_email_and_carries_no_secret() -> None:
    events = users.decide_user(None, users.RegisterUser(email=" Ada@Example.COM "), NOW)
    assert events == [UserCreated(email="ada@example.com")]
    assert set(UserCreated.__struct_fields__) == {"email"}


def test_a_user_is_created_once() -> None:
    state = given(users.evolve_user, [UserCreated(email="a@b.co")])
    with pytest.raises(Conflict):
        users.decide_user(state, users.RegisterUser(email="a@b.co"), NOW)


@pytest.mark.parametrize(
    ("granter", "role", "allowed"),
    [
        (None, Role.OWNER, True),
        (Role.OWNER, Role.OWNER, True),
        (Role.ADMIN, Role.ADMIN, True),
        (Role.ADMIN, Role.OWNER, False),
        (Role.MEMBER, Role.VIEWER, False),
        (Role.VIEWER, Role.VIEWER, False),
    ],
)
def test_who_may_grant_which_role(granter: Role | None, role: Role, allowed: bool) -> None:
    uid = uuid4()
    scopes = None if granter is None else scopes_of(granter)
    cmd = users.GrantMembership(
        user_id=uid, email="X@y.io", role=role, granted_by_role=granter, granted_by_scopes=scopes
    )
    if allowed:
        assert users.decide_membership(None, cmd, NOW) == [
            MembershipGranted(user_id=uid, email="x@y.io", role=role)
        ]
    else:
        with pytest.raises(AccessDenied):
            users.decide_membership(None, cmd, NOW)


@pytest.mark.parametrize(
    ("key_scopes", "role", "allowed"),
    [
        (("*",), Role.OWNER, True),
        (("users:write",), Role.OWNER, False),  # no escalation through a narrow key
        (("users:write",), Role.VIEWER, False),
        (("users:write", "*:read"), Role.VIEWER, True),
        (
            (
                *("users:*", "devices:*", "readings:*", "alert-rules:*", "alerts:*"),
                *("notification-channels:*", "events:read", "exports:*", "fleet:*"),
                "api-keys:read",
            ),
            Role.MEMBER,
            True,
        ),
        (("users:*", "devices:*", "readings:*", "alerts:*", "exports:*"), Role.MEMBER, False),
    ],
)
def test_an_api_key_grants_no_more_than_it_holds(
    key_scopes: tuple[str, ...], role: Role, allowed: bool
) -> None:
    assert users.may_grant(None, key_scopes, role) is allowed


def test_role_scopes() -> None:
    assert set(ROLE_SCOPES) == set(Role)
    assert scopes_of("owner") == ("*",)
    viewer, member = scopes_of(Role.VIEWER), scopes_of(Role.MEMBER)
    assert any(scope_covers(s, "devices:read") for s in viewer)
    assert not any(scope_covers(s, "devices:write") for s in viewer)
    assert any(scope_covers(s, "devices:write") for s in member)
    assert not any(scope_covers(s, "users:write") for s in member)
    assert not any(scope_covers(s, "api-keys:write") for s in member)


# --- signing keys ----------------------------------------------------------------------------


def test_publish_and_retire_with_overlap() -> None:
    cmd = signing_keys.PublishSigningKey(
        kid="k1", public_key_pem="PEM", not_after=NOW + timedelta(days=1)
    )
    events = signing_keys.decide(None, cmd, NOW)
    assert events == [
        SigningKeyPublished(
            kid="k1",
            algorithm="EdDSA",
            public_key_pem="PEM",
            not_before=NOW,
            not_after=NOW + timedelta(days=1),
        )
    ]
    state = given(signing_keys.evolve, events)
    until = NOW + timedelta(minutes=15)
    retired = signing_keys.decide(state, signing_keys.RetireSigningKey(verify_until=until), NOW)
    assert retired == [SigningKeyRetired(kid="k1", verify_until=until)]
    state = signing_keys.evolve(state, retired[0], state.id)
    assert signing_keys.decide(state, signing_keys.RetireSigningKey(verify_until=until), NOW) == []


# --- sessions --------------------------------------------------------------------------------


def _started(user_id=None):  # type: ignore[no-untyped-def]
    return SessionStarted(
        user_id=user_id or uuid4(),
        role=Role.MEMBER,
        refresh_token_hash="h1",
        expires_at=NOW + timedelta(days=30),
    )


def test_refresh_rotates_the_token() -> None:
    state = given(sessions.evolve, [_started()])
    cmd = sessions.RefreshSession(presented_hash="h1", new_hash="h2")
    assert sessions.decide(state, cmd, NOW) == [SessionRefreshed(refresh_token_hash="h2")]


def test_reusing_a_rotated_token_revokes_the_family() -> None:
    start = _started()
    state = given(sessions.evolve, [start, SessionRefreshed(refresh_token_hash="h2")])
    events = sessions.decide(
        state, sessions.RefreshSession(presented_hash="h1", new_hash="h3"), NOW
    )
    assert events == [SessionRevoked(reason=sessions.REUSE, user_id=start.user_id)]
    revoked = sessions.evolve(state, events[0], state.id)
    for presented in ("h1", "h2"):  # the current token dies with the family
        with pytest.raises(OutpostError) as exc:
            sessions.decide(
                revoked, sessions.RefreshSession(presented_hash=presented, new_hash="h4"), NOW
            )
        assert exc.value.type is ErrorType.INVALID_TOKEN


def test_an_unknown_or_expired_refresh_token_is_invalid() -> None:
    state = given(sessions.evolve, [_started()])
    for st, presented, now in (
        (state, "nope", NOW),
        (state, "h1", NOW + timedelta(days=31)),
        (None, "h1", NOW),
    ):
        with pytest.raises(OutpostError) as exc:
            sessions.decide(
                st, sessions.RefreshSession(presented_hash=presented, new_hash="x"), now
            )
        assert exc.value.type is ErrorType.INVALID_TOKEN


def test_logout_revokes_once() -> None:
    start = _started()
    state = given(sessions.evolve, [start])
    events = sessions.decide(state, sessions.RevokeSession(reason="logout"), NOW)
    assert events == [SessionRevoked(reason="logout", user_id=start.user_id)]
    state = sessions.evolve(state, events[0], state.id)
    assert sessions.decide(state, sessions.RevokeSession(reason="logout"), NOW) == []


def test_refresh_tokens_route_to_their_session_and_never_parse_garbage() -> None:
    org, sid = uuid4(), uuid4()
    token = signing.new_refresh_token(org, sid)
    assert signing.parse_refresh_token(token) == (org, sid)
    assert signing.parse_refresh_token("rt_" + "0" * 64) is None
    assert signing.parse_refresh_token("sk_live_x") is None
    assert signing.hash_refresh_token(token) != token


# --- no credential above its creator's role (decision 78) ------------------------------------


@pytest.mark.parametrize(
    ("held", "wanted", "ok"),
    [
        (("*:read", "*:write"), "devices:*", True),
        (("*:read", "*:write"), "users:write", True),
        (("*:read", "*:write"), "*:read", True),
        (("*:read", "*:write"), "*", False),
        (("*:read",), "devices:*", False),
        (("devices:read", "devices:write"), "devices:*", True),
        (("devices:read", "readings:write"), "devices:*", False),
        (("*",), "*", True),
        ((), "devices:read", False),
    ],
)
def test_a_set_of_scopes_covers(held: tuple[str, ...], wanted: str, ok: bool) -> None:
    assert covers(held, wanted) is ok


def test_the_roles_are_ordered_by_their_scopes() -> None:
    """``bfla``: owner ⊃ admin ⊃ member and viewer, and only the owner holds
    ``*`` (what makes owners)."""
    order = [Role.OWNER, Role.ADMIN, Role.MEMBER]
    for i, higher in enumerate(order):
        for lower in order[i:]:
            assert all(covers(scopes_of(higher), s) for s in scopes_of(lower))
        for above in order[:i]:
            assert not all(covers(scopes_of(higher), s) for s in scopes_of(above))
    assert all(covers(scopes_of(Role.ADMIN), s) for s in scopes_of(Role.VIEWER))
    assert not covers(scopes_of(Role.ADMIN), "*")


@pytest.mark.parametrize(
    ("creator", "scopes", "ok"),
    [
        (Role.ADMIN, ("*",), False),
        (Role.ADMIN, ("*:read", "*:write"), True),
        (Role.ADMIN, ("users:write", "devices:*"), True),
        (Role.OWNER, ("*",), True),
        (Role.MEMBER, ("users:write",), False),
    ],
)
def test_a_key_or_client_holds_no_more_than_its_creators_role(
    creator: Role, scopes: tuple[str, ...], ok: bool
) -> None:
    """``bfla``: an admin session cannot mint a ``*`` API key or OAuth client."""
    issue = api_keys.IssueApiKey(
        name="k", prefix="p" * 12, key_hash="h", scopes=scopes, granted=scopes_of(creator)
    )
    register = oauth_clients.RegisterClient(
        name="c", client_id="oc_x", secret_hash="a" * 64, scopes=scopes, granted=scopes_of(creator)
    )
    for decide, command in ((api_keys.decide, issue), (oauth_clients.decide, register)):
        if ok:
            assert decide(None, command, NOW)  # type: ignore[operator]
        else:
            with pytest.raises(ValidationFailed):
                decide(None, command, NOW)  # type: ignore[operator]


@pytest.mark.parametrize(
    ("creator", "role", "allowed"),
    [
        (Role.ADMIN, Role.OWNER, False),
        (Role.ADMIN, Role.ADMIN, True),
        (Role.ADMIN, Role.MEMBER, True),
        (Role.ADMIN, Role.VIEWER, True),
        (Role.OWNER, Role.OWNER, True),
    ],
)
def test_what_an_admins_widest_key_may_grant(creator: Role, role: Role, allowed: bool) -> None:
    """``bfla``: the widest key an admin can mint (every scope the admin holds,
    what ``POST /api-keys`` without ``scopes`` gives) makes admins and below, never an owner;
    an owner's key makes owners."""
    key_scopes = scopes_of(creator)
    assert users.may_grant(None, key_scopes, role) is allowed
    # and through an OAuth client the admin registered, likewise
    client = given(
        oauth_clients.evolve,
        oauth_clients.decide(
            None,
            oauth_clients.RegisterClient(
                name="c",
                client_id="oc_x",
                secret_hash="a" * 64,
                scopes=key_scopes,
                granted=key_scopes,
            ),
            NOW,
        ),
    )
    token_scopes = oauth_clients.granted_scopes(client, None)
    assert token_scopes is not None
    assert users.may_grant(None, token_scopes, role) is allowed
