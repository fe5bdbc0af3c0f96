"""No credential above its creator's role (decision 78), through the gateway: an admin can
mint neither a ``*`` API key or OAuth client nor an owner, directly or through any key it
minted; an owner can do both (docs/design/reliability.md ``bfla``)."""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx
import pytest
from _keys import bearer, fresh_key

pytestmark = pytest.mark.e2e

PASSWORD = "correct horse battery staple"


def _person(http: httpx.Client, key: str, role: str) -> dict[str, str]:
    """A user of the key's organization with ``role``, logged in."""
    email = f"{role}-{uuid.uuid4().hex[:8]}@example.com"
    created = http.post(
        "/api/v1/users",
        json={"email": email, "password": PASSWORD, "role": role},
        headers=bearer(key),
    )
    assert created.status_code == 201, created.text
    login = http.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert login.status_code == 200, login.text
    return {"email": email, "token": login.json()["accessToken"]}


def _accepted(http: httpx.Client, key: str) -> str:
    deadline = time.monotonic() + 10  # until the gateway's credential cache has the key
    while http.get("/api/v1/users", headers=bearer(key)).status_code == 401:
        assert time.monotonic() < deadline, "the new API key was not accepted within 10 s"
        time.sleep(0.1)
    return key


def _new_user(http: httpx.Client, credential: str, role: str) -> httpx.Response:
    return http.post(
        "/api/v1/users",
        json={
            "email": f"new-{uuid.uuid4().hex[:8]}@example.com",
            "password": PASSWORD,
            "role": role,
        },
        headers=bearer(credential),
    )


def _error(resp: httpx.Response, status: int, type_: str) -> None:
    assert resp.status_code == status, resp.text
    assert resp.json()["type"] == type_, resp.text


def test_an_admin_mints_no_star_credential_and_no_owner(
    http: httpx.Client, platform: dict[str, Any]
) -> None:
    """``bfla``: the story of issue 18 (an admin mints a ``*`` key and with it
    creates an owner) is refused at each step, and every narrower path is refused too."""
    org_key = fresh_key(http, platform, "ceiling")  # the operator's: ``*``
    admin = _person(http, org_key, "admin")["token"]

    # Directly: no owner, no ``*`` key, no ``*`` OAuth client.
    _error(_new_user(http, admin, "owner"), 403, "access_denied")
    star = http.post("/api/v1/api-keys", json={"name": "x", "scopes": ["*"]}, headers=bearer(admin))
    _error(star, 400, "validation_error")
    client = http.post(
        "/api/v1/oauth-clients", json={"name": "x", "scopes": ["*"]}, headers=bearer(admin)
    )
    _error(client, 400, "validation_error")

    # The widest key an admin can mint holds what the admin holds, and makes no owner.
    widest = http.post("/api/v1/api-keys", json={"name": "widest"}, headers=bearer(admin))
    assert widest.status_code == 201, widest.text
    assert sorted(widest.json()["scopes"]) == ["*:read", "*:write"]
    key = _accepted(http, widest.json()["key"])
    _error(_new_user(http, key, "owner"), 403, "access_denied")
    assert _new_user(http, key, "admin").status_code == 201  # an admin's peers, yes
    assert _new_user(http, key, "member").status_code == 201
    again = http.post("/api/v1/api-keys", json={"name": "x", "scopes": ["*"]}, headers=bearer(key))
    _error(again, 400, "validation_error")

    # Through an OAuth client the admin registered: its tokens make no owner either.
    registered = http.post(
        "/api/v1/oauth-clients",
        json={"name": "ci", "scopes": ["*:read", "*:write"]},
        headers=bearer(admin),
    )
    assert registered.status_code == 201, registered.text
    token = http.post(
        "/auth/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(registered.json()["clientId"], registered.json()["clientSecret"]),
    )
    assert token.status_code == 200, token.text
    _error(_new_user(http, token.json()["access_token"], "owner"), 403, "access_denied")

    # And an admin session still reaches an owner's routes: only what it may grant differs.
    assert http.get("/api/v1/api-keys", headers=bearer(admin)).status_code == 200
    assert http.get("/api/v1/readings/settings", headers=bearer(admin)).status_code == 200


def test_an_owner_mints_a_star_key_and_an_owner(
    http: httpx.Client, platform: dict[str, Any]
) -> None:
    """``bfla``: what an admin may not, an owner may."""
    org_key = fresh_key(http, platform, "ceiling-owner")
    owner = _person(http, org_key, "owner")["token"]
    assert _new_user(http, owner, "owner").status_code == 201
    star = http.post("/api/v1/api-keys", json={"name": "s", "scopes": ["*"]}, headers=bearer(owner))
    assert star.status_code == 201, star.text
    key = _accepted(http, star.json()["key"])
    assert _new_user(http, key, "owner").status_code == 201
    client = http.post(
        "/api/v1/oauth-clients", json={"name": "c", "scopes": ["*"]}, headers=bearer(owner)
    )
    assert client.status_code == 201, client.text
