"""The OAuth client aggregate: scopes bounded by the creator, secret rotation and deletion,
constant-time secret checks, and the scopes a token may get."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import uuid4

import pytest

from outpost_contracts.errors import NotFound, ValidationFailed
from outpost_contracts.identity import (
    ApiKeyCreated,
    OAuthClientCreated,
    OAuthClientDeleted,
)
from outpost_identity.adapters import signing
from outpost_identity.domain import oauth_clients as oc

pytestmark = pytest.mark.unit
NOW = datetime(2026, 11, 21, tzinfo=UTC)
H1, H2 = "a" * 64, "b" * 64


def _register(scopes: tuple[str, ...], granted: tuple[str, ...] = ("*",)) -> oc.RegisterClient:
    return oc.RegisterClient(
        name="ci", client_id="oc_x", secret_hash=H1, scopes=scopes, granted=granted
    )


def _state(*events: object) -> oc.OAuthClient | None:
    sid = uuid4()
    state = None
    for e in events:
        state = oc.evolve(state, e, sid)  # type: ignore[arg-type]
    return state


def _created(scopes: tuple[str, ...] = ("devices:read", "readings:*")) -> OAuthClientCreated:
    return OAuthClientCreated(name="ci", client_id="oc_x", secret_hash=H1, scopes=scopes)


def test_register_within_the_creators_scopes() -> None:
    [event] = oc.decide(None, _register(("devices:read",), ("devices:*",)), NOW)
    assert isinstance(event, OAuthClientCreated)
    assert event.scopes == ("devices:read",) and event.secret_hash == H1


def test_a_client_never_gets_more_than_its_creator() -> None:
    with pytest.raises(ValidationFailed):
        oc.decide(None, _register(("devices:write",), ("devices:read",)), NOW)
    with pytest.raises(ValidationFailed):
        oc.decide(None, _register(()), NOW)


def test_rotate_replaces_the_secret() -> None:
    state = _state(_created())
    [event] = oc.decide(state, oc.RotateSecret(secret_hash=H2), NOW)
    rotated = oc.evolve(state, event, uuid4())
    assert rotated is not None and rotated.version == 2
    assert oc.verify_secret(rotated, H2)
    assert not oc.verify_secret(rotated, H1)  # the old secret stops working


def test_delete_then_nothing() -> None:
    state = _state(_created())
    [event] = oc.decide(state, oc.DeleteClient(), NOW)
    assert event == OAuthClientDeleted(client_id="oc_x")
    deleted = oc.evolve(state, event, uuid4())
    assert not oc.verify_secret(deleted, H1)
    for command in (oc.DeleteClient(), oc.RotateSecret(secret_hash=H2)):
        with pytest.raises(NotFound):
            oc.decide(deleted, command, NOW)
    with pytest.raises(NotFound):
        oc.decide(None, oc.DeleteClient(), NOW)


def test_verify_secret() -> None:
    state = _state(_created())
    assert oc.verify_secret(state, H1)
    assert not oc.verify_secret(state, H2)
    assert not oc.verify_secret(None, "0" * 64)  # the dummy never verifies


def test_another_aggregates_stream_is_no_client() -> None:
    forged = ApiKeyCreated(name="k", prefix="p", key_hash=H1, scopes=("*",))
    assert _state(forged) is None


@pytest.mark.parametrize(
    ("requested", "granted"),
    [
        (None, ("devices:read", "readings:*")),
        (("devices:read",), ("devices:read",)),
        (("readings:read", "readings:read"), ("readings:read",)),
        (("devices:write",), None),
        (("*",), None),
        ((), None),
    ],
)
def test_granted_scopes(requested: tuple[str, ...] | None, granted: object) -> None:
    state = _state(_created())
    assert state is not None
    assert oc.granted_scopes(state, requested) == granted


def test_client_ids_route_to_tenant_and_stream() -> None:
    org, client = uuid4(), uuid4()
    client_id = signing.new_client_id(org, client)
    assert signing.parse_client_id(client_id) == (org, client)
    for bad in ("", "oc_", "sk_live_x", client_id + "0", client_id.upper()):
        assert signing.parse_client_id(bad) is None
    secret = signing.new_client_secret()
    assert len(secret) >= 40 and signing.new_client_secret() != secret
    assert signing.hash_client_secret(secret) != signing.hash_client_secret(secret + "x")
