"""Identity's deciders: given events, when a command, then events. No I/O."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest

from outpost_contracts.credentials import scope_covers
from outpost_contracts.errors import Conflict, NotFound, ValidationFailed
from outpost_contracts.identity import (
    ApiKeyCreated,
    ApiKeyRevoked,
    CreateOrganization,
    OrganizationCreated,
    OrganizationReinstated,
    OrganizationStatus,
    OrganizationSuspended,
)
from outpost_identity.domain import api_keys, organizations
from outpost_kit.aggregate import fold

pytestmark = pytest.mark.unit
NOW = datetime(2026, 11, 21, tzinfo=UTC)


def given(evolve, events):  # type: ignore[no-untyped-def]
    state = None
    sid = uuid4()
    for e in events:
        state = evolve(state, e, sid)
    return state


def test_create_organization() -> None:
    assert organizations.decide(None, CreateOrganization(name=" acme "), NOW) == [
        OrganizationCreated(name="acme")
    ]


def test_an_organization_is_created_once() -> None:
    state = given(organizations.evolve, [OrganizationCreated(name="acme")])
    with pytest.raises(Conflict):
        organizations.decide(state, CreateOrganization(name="acme"), NOW)


def test_suspend_is_idempotent() -> None:
    state = given(organizations.evolve, [OrganizationCreated(name="a")])
    assert organizations.decide(state, organizations.SuspendOrganization(), NOW) == [
        OrganizationSuspended(reason="")
    ]
    suspended = organizations.evolve(state, OrganizationSuspended(), state.id)
    assert suspended.status is OrganizationStatus.SUSPENDED and suspended.version == 2
    assert organizations.decide(suspended, organizations.SuspendOrganization(), NOW) == []
    with pytest.raises(NotFound):
        organizations.decide(None, organizations.SuspendOrganization(), NOW)


def test_reinstating_lifts_a_suspension_and_is_idempotent() -> None:
    """docs/design/reliability.md ``suspension``: the operator lifts a suspension (decision 76)."""
    state = given(organizations.evolve, [OrganizationCreated(name="a")])
    assert organizations.decide(state, organizations.ReinstateOrganization(), NOW) == []
    suspended = organizations.evolve(state, OrganizationSuspended(), state.id)
    assert organizations.decide(suspended, organizations.ReinstateOrganization(), NOW) == [
        OrganizationReinstated()
    ]
    active = organizations.evolve(suspended, OrganizationReinstated(), state.id)
    assert active.status is OrganizationStatus.ACTIVE and active.version == 3
    assert organizations.decide(active, organizations.SuspendOrganization(), NOW) == [
        OrganizationSuspended(reason="")
    ]
    with pytest.raises(NotFound):
        organizations.decide(None, organizations.ReinstateOrganization(), NOW)


def _issue(scopes: tuple[str, ...], granted: tuple[str, ...], **kw) -> api_keys.IssueApiKey:  # type: ignore[no-untyped-def]
    return api_keys.IssueApiKey(
        name="k", prefix="p" * 12, key_hash="h", scopes=scopes, granted=granted, **kw
    )


def test_a_key_never_gets_more_than_its_creator() -> None:
    events = api_keys.decide(None, _issue(("devices:read",), ("devices:*",)), NOW)
    assert events == [
        ApiKeyCreated(name="k", prefix="p" * 12, key_hash="h", scopes=("devices:read",))
    ]
    with pytest.raises(ValidationFailed) as caught:
        api_keys.decide(None, _issue(("api-keys:write",), ("devices:*",)), NOW)
    assert caught.value.fields[0].name == "scopes"


def test_expiry_must_be_in_the_future() -> None:
    with pytest.raises(ValidationFailed):
        api_keys.decide(None, _issue(("*",), ("*",), expires_at=NOW - timedelta(seconds=1)), NOW)


def test_revoke() -> None:
    created = ApiKeyCreated(name="k", prefix="abc", key_hash="h", scopes=("*",))
    state = given(api_keys.evolve, [created])
    assert api_keys.decide(state, api_keys.RevokeApiKey(), NOW) == [ApiKeyRevoked(prefix="abc")]
    revoked = given(api_keys.evolve, [created, ApiKeyRevoked(prefix="abc")])
    assert revoked.revoked and api_keys.decide(revoked, api_keys.RevokeApiKey(), NOW) == []
    with pytest.raises(NotFound):
        api_keys.decide(None, api_keys.RevokeApiKey(), NOW)


@pytest.mark.parametrize(
    ("granted", "wanted", "ok"),
    [
        ("*", "devices:read", True),
        ("devices:*", "devices:write", True),
        ("devices:read", "devices:read", True),
        ("devices:read", "devices:write", False),
        ("readings:*", "devices:read", False),
    ],
)
def test_scope_covers(granted: str, wanted: str, ok: bool) -> None:
    assert scope_covers(granted, wanted) is ok


def test_fold_reports_version() -> None:
    assert fold(organizations.evolve, uuid4(), []) == (None, 0)
