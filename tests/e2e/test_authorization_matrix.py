"""bfla: every role and scope against every route and method of the OpenAPI document.

The document says which scope each operation needs (its OAuth2 scope; operator routes have
none but the bearer scheme). For every credential — a user of each role, logged in, and API
keys with narrow scopes — every operation must answer 403 ``access_denied`` exactly when the
credential's scopes do not cover the operation's, and something else when they do. Requests
use random ids and empty bodies, so a granted request is refused later (400/404) and changes
nothing.
"""

from __future__ import annotations

import re
import time
import uuid
from typing import Any

import httpx
import pytest

from outpost_contracts.tokens import ROLE_SCOPES

pytestmark = pytest.mark.e2e

METHODS = ("get", "post", "put", "patch", "delete")
PUBLIC_PREFIXES = (
    "/auth/oauth/token",
    "/api/v1/auth/login",
    "/api/v1/auth/refresh",
    "/api/v1/devices/provision",  # the registration token is the credential
    "/api/v1/devices/certificates/renew",  # the current certificate and key are
    "/.well-known/jwks.json",  # public keys, for anyone verifying tokens (decision 78)
)


def covers(granted: str, required: str) -> bool:
    """The scope grammar of docs/api.md, written out independently of the code under test."""
    if granted in ("*", required):
        return True
    resource, _, action = required.partition(":")
    return granted in (f"{resource}:*", f"*:{action}")


def _wait_accepted(http: httpx.Client, headers: dict[str, str]) -> None:
    deadline = time.monotonic() + 30
    while http.get("/api/v1/devices", headers=headers).status_code == 401:
        assert time.monotonic() < deadline, "the gateway never accepted the credential"
        time.sleep(0.2)


def _operations(http: httpx.Client) -> list[tuple[str, str, str | None]]:
    """(method, path, required scope or None for operator-only) of every secured operation."""
    doc = http.get("/api/v3/api-docs").json()
    ops = []
    for path, item in doc["paths"].items():
        for method, op in item.items():
            if method not in METHODS or path.startswith(PUBLIC_PREFIXES):
                continue
            security = op.get("security") or []
            oauth = [
                s["oauth2ClientCredentials"] for s in security if "oauth2ClientCredentials" in s
            ]
            if path == "/api/v1/auth/logout":
                continue  # any valid credential; it would end the session under test
            ops.append((method.upper(), path, oauth[0][0] if oauth and oauth[0] else None))
    return ops


def _call(http: httpx.Client, method: str, path: str, headers: dict[str, str]) -> httpx.Response:
    # every path parameter a random id (`{id}`, `{key}`, `{command_id}`…; `{serial}` too)
    concrete = re.sub(r"\{[^}]+\}", lambda _m: str(uuid.uuid4()), path)
    body = {} if method in ("POST", "PATCH", "PUT") else None
    with http.stream(method, concrete, json=body, headers=headers) as response:
        if not response.headers.get("content-type", "").startswith("text/event-stream"):
            response.read()  # an event stream's 200 never ends: its status is the answer
        return response


def test_every_role_and_scope_against_every_route(
    http: httpx.Client, platform: dict[str, Any], raise_limits: Any
) -> None:
    operator = {"Authorization": f"Bearer {platform['operatorKey']}"}
    org = http.post(
        "/api/v1/admin/organizations",
        json={"name": f"matrix-{uuid.uuid4().hex[:8]}"},
        headers=operator,
    ).json()
    # Every credential calls every route once: more writes than a minute's default allows.
    raise_limits(org["id"])
    as_operator = {**operator, "X-Organization": org["id"]}

    credentials: dict[str, tuple[dict[str, str], tuple[str, ...]]] = {}
    password = "correct horse battery staple 7"
    for role, scopes in ROLE_SCOPES.items():
        email = f"{role.value}-{uuid.uuid4().hex[:6]}@example.com"
        made = http.post(
            "/api/v1/users",
            json={"email": email, "password": password, "role": role.value},
            headers=as_operator,
        )
        assert made.status_code == 201, made.text
        login = http.post(
            "/api/v1/auth/login",
            json={"email": email, "password": password, "organization": org["id"]},
        )
        assert login.status_code == 200, login.text
        headers = {"Authorization": f"Bearer {login.json()['accessToken']}"}
        credentials[f"user:{role.value}"] = (headers, scopes)
    for scopes in (["devices:read"], ["readings:read", "audit-log:read"], ["users:*"]):
        issued = http.post(
            "/api/v1/api-keys", json={"name": "narrow", "scopes": scopes}, headers=as_operator
        )
        assert issued.status_code == 201, issued.text
        credentials[f"key:{','.join(scopes)}"] = (
            {"Authorization": f"Bearer {issued.json()['key']}"},
            tuple(scopes),
        )
    for headers, _ in credentials.values():
        _wait_accepted(http, headers)

    operations = _operations(http)
    assert len(operations) >= 20  # every secured operation of the document
    wrong: list[str] = []
    for name, (headers, scopes) in credentials.items():
        for method, path, required in operations:
            granted = required is not None and any(covers(g, required) for g in scopes)
            response = _call(http, method, path, headers)
            denied = response.status_code == 403 and response.json()["type"] == "access_denied"
            if granted == denied or response.status_code >= 500:
                wrong.append(
                    f"{name} {method} {path} (needs {required or 'operator'}): "
                    f"{response.status_code} {response.text[:120]}"
                )
    assert wrong == [], "\n".join(wrong)
