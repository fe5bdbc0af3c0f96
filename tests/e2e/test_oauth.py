"""OAuth2 clients and the client-credentials grant, end to end: create a client, get tokens
with HTTP Basic and with form credentials, use them, the RFC 6749 §5.2 errors, secret
rotation, and deletion (its tokens refused within 5 s)."""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.e2e

TOKEN = "/auth/oauth/token"
REALM = 'Basic realm="outpost"'


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def key(platform: dict[str, Any], http: httpx.Client) -> str:
    """A fresh API key of the demo organization (its own rate-limit budget)."""
    operator = platform["operatorKey"]
    org_id = platform["organization"]["id"]
    issued = http.post(
        "/api/v1/api-keys",
        json={"name": f"oauth-e2e-{uuid.uuid4().hex[:8]}"},
        headers={**bearer(operator), "X-Organization": org_id},
    )
    assert issued.status_code == 201, issued.text
    fresh = str(issued.json()["key"])
    deadline = time.monotonic() + 30
    while http.get("/api/v1/oauth-clients", headers=bearer(fresh)).status_code == 401:
        assert time.monotonic() < deadline, "the gateway never learnt the new key"
        time.sleep(0.1)
    return fresh


def _token(http: httpx.Client, client: dict[str, Any], secret: str | None = None, **form: str):  # type: ignore[no-untyped-def]
    return http.post(
        TOKEN,
        data={"grant_type": "client_credentials", **form},
        auth=(client["clientId"], secret if secret is not None else client["clientSecret"]),
    )


def _oauth_error(resp: httpx.Response, status: int, error: str) -> None:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert set(body) == {"error", "error_description"} and body["error"] == error, body
    if status == 401:
        assert resp.headers["www-authenticate"] == REALM


def test_oauth_client_lifecycle(http: httpx.Client, key: str) -> None:
    created = http.post(
        "/api/v1/oauth-clients",
        json={"name": "ci-pipeline", "scopes": ["devices:read"]},
        headers=bearer(key),
    )
    assert created.status_code == 201, created.text
    client = created.json()
    assert set(client) >= {"id", "name", "clientId", "clientSecret", "scopes", "createdAt"}
    assert client["scopes"] == ["devices:read"]

    listed = http.get("/api/v1/oauth-clients", headers=bearer(key)).json()
    ids = [c["id"] for c in listed["data"]]
    assert client["id"] in ids
    assert all("clientSecret" not in c for c in listed["data"])

    # Basic credentials
    got = _token(http, client)
    assert got.status_code == 200, got.text
    body = got.json()
    assert set(body) == {"access_token", "token_type", "expires_in", "scope"}
    assert body["token_type"] == "bearer" and body["scope"] == "devices:read"
    assert 0 < body["expires_in"] <= 900
    assert got.headers["cache-control"] == "no-store" and got.headers["pragma"] == "no-cache"
    access = body["access_token"]
    assert http.get("/api/v1/devices", headers=bearer(access)).status_code == 200
    # the token's scopes are the client's: no writes
    denied = http.post("/api/v1/devices", json={"name": "x"}, headers=bearer(access))
    assert denied.status_code == 403, denied.text

    # form credentials, with an explicit scope
    by_form = http.post(
        TOKEN,
        data={
            "grant_type": "client_credentials",
            "client_id": client["clientId"],
            "client_secret": client["clientSecret"],
            "scope": "devices:read",
        },
    )
    assert by_form.status_code == 200, by_form.text
    assert http.get("/api/v1/devices", headers=bearer(by_form.json()["access_token"])).is_success

    # errors
    _oauth_error(_token(http, client, scope="devices:write"), 400, "invalid_scope")
    _oauth_error(_token(http, client, secret="cs_wrong"), 401, "invalid_client")
    unknown = {"clientId": "oc_" + "0" * 64, "clientSecret": "cs_x"}
    _oauth_error(_token(http, unknown), 401, "invalid_client")
    _oauth_error(
        http.post(TOKEN, data={"grant_type": "password"}, auth=(client["clientId"], "x")),
        400,
        "unsupported_grant_type",
    )
    _oauth_error(
        http.post(TOKEN, json={"grant_type": "client_credentials"}), 400, "invalid_request"
    )

    # rotation: the old secret stops working, the new one works
    rotated = http.post(f"/api/v1/oauth-clients/{client['id']}/rotate-secret", headers=bearer(key))
    assert rotated.status_code == 200, rotated.text
    new_secret = rotated.json()["clientSecret"]
    assert new_secret != client["clientSecret"]
    _oauth_error(_token(http, client), 401, "invalid_client")
    fresh = _token(http, client, secret=new_secret)
    assert fresh.status_code == 200, fresh.text
    access = fresh.json()["access_token"]

    # deletion: no more tokens, and the gateway refuses the ones issued within 5 s
    gone = http.delete(f"/api/v1/oauth-clients/{client['id']}", headers=bearer(key))
    assert gone.status_code == 204, gone.text
    deleted_at = time.monotonic()
    _oauth_error(_token(http, client, secret=new_secret), 401, "invalid_client")
    while http.get("/api/v1/devices", headers=bearer(access)).status_code != 401:
        assert time.monotonic() - deleted_at < 5, "a deleted client's token still works"
        time.sleep(0.1)
    assert (
        http.delete(f"/api/v1/oauth-clients/{client['id']}", headers=bearer(key)).status_code == 404
    )


def test_a_client_never_gets_more_than_its_creator(
    platform: dict[str, Any], http: httpx.Client, key: str
) -> None:
    narrow = http.post(
        "/api/v1/api-keys",
        json={"name": "narrow", "scopes": ["oauth-clients:write", "devices:read"]},
        headers=bearer(key),
    )
    assert narrow.status_code == 201, narrow.text
    narrow_key = narrow.json()["key"]
    deadline = time.monotonic() + 30
    while True:
        resp = http.post(
            "/api/v1/oauth-clients",
            json={"name": "too-much", "scopes": ["devices:write"]},
            headers=bearer(narrow_key),
        )
        if resp.status_code != 401 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert resp.status_code == 400, resp.text
    assert resp.json()["type"] == "validation_error"
