"""Users, login, refresh-token rotation and reuse detection, logout, and the authn negatives
(docs/design/reliability.md "authn"): every forged or stale access token is 401 invalid_token."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import time
import uuid
from typing import Any

import asyncpg
import httpx
import jwt
import pytest
from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from outpost_devkit.dev.stack import DevStack

pytestmark = pytest.mark.e2e

PASSWORD = "correct horse battery staple"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _eventually(check: Any, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(0.1)


def _assert_error(resp: httpx.Response, status: int, type_: str) -> None:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert body["object"] == "error" and body["type"] == type_, body


def _login(http: httpx.Client, email: str, password: str = PASSWORD) -> httpx.Response:
    return http.post("/api/v1/auth/login", json={"email": email, "password": password})


@pytest.fixture(scope="module")
def user(platform: dict[str, Any], http: httpx.Client) -> dict[str, Any]:
    """A member of the demo organization, created with the demo organization's key."""
    key = platform["organization"]["apiKey"]
    email = f"Ada-{uuid.uuid4().hex[:8]}@Example.com"
    created = http.post(
        "/api/v1/users",
        json={"email": email, "password": PASSWORD, "role": "member"},
        headers=bearer(key),
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["email"] == email.lower() and body["role"] == "member"
    assert not {"password", "passwordHash"} & set(body)
    return {**body, "email": email}


def _session(http: httpx.Client, user: dict[str, Any]) -> dict[str, Any]:
    resp = _login(http, user["email"])
    assert resp.status_code == 200, resp.text
    tokens = resp.json()
    assert tokens["tokenType"] == "Bearer" and tokens["expiresIn"] == 900
    assert tokens["refreshToken"] and tokens["accessToken"].count(".") == 2
    return dict(tokens)


def _accepted(http: httpx.Client, access: str) -> bool:
    return http.get("/api/v1/devices", headers=bearer(access)).status_code == 200


def test_users_are_listed_and_read_without_secrets(
    platform: dict[str, Any], http: httpx.Client, user: dict[str, Any]
) -> None:
    key = platform["organization"]["apiKey"]
    listed = http.get("/api/v1/users", headers=bearer(key))
    assert listed.status_code == 200, listed.text
    assert user["id"] in [u["id"] for u in listed.json()["data"]]
    one = http.get(f"/api/v1/users/{user['id']}", headers=bearer(key))
    assert one.status_code == 200 and one.json()["email"] == user["email"].lower()
    assert "password" not in one.text.lower()
    again = http.post(
        "/api/v1/users",
        json={"email": user["email"].upper(), "password": PASSWORD, "role": "viewer"},
        headers=bearer(key),
    )
    _assert_error(again, 409, "conflict")  # emails are unique, case-insensitively


def test_login_use_refresh_reuse_and_logout(http: httpx.Client, user: dict[str, Any]) -> None:
    tokens = _session(http, user)
    claims = jwt.decode(tokens["accessToken"], options={"verify_signature": False})
    assert claims["sub"] == user["id"] and claims["role"] == "member"
    assert claims["aud"] == "outpost-api" and claims["exp"] - claims["iat"] == 900
    assert jwt.get_unverified_header(tokens["accessToken"])["alg"] == "EdDSA"
    assert _eventually(lambda: _accepted(http, tokens["accessToken"]))
    # a member may read users but not create them
    _assert_error(
        http.post(
            "/api/v1/users",
            json={"email": "x@y.io", "password": PASSWORD, "role": "viewer"},
            headers=bearer(tokens["accessToken"]),
        ),
        403,
        "access_denied",
    )

    rotated = http.post("/api/v1/auth/refresh", json={"refreshToken": tokens["refreshToken"]})
    assert rotated.status_code == 200, rotated.text
    second = rotated.json()
    assert second["refreshToken"] != tokens["refreshToken"]
    assert _accepted(http, second["accessToken"])

    reused = http.post("/api/v1/auth/refresh", json={"refreshToken": tokens["refreshToken"]})
    _assert_error(reused, 401, "invalid_token")
    # the whole family is revoked: the newest refresh token and the access tokens too
    after = http.post("/api/v1/auth/refresh", json={"refreshToken": second["refreshToken"]})
    _assert_error(after, 401, "invalid_token")
    assert _eventually(lambda: not _accepted(http, second["accessToken"]), timeout=5)

    third = _session(http, user)
    assert _eventually(lambda: _accepted(http, third["accessToken"]))
    out = http.post("/api/v1/auth/logout", headers=bearer(third["accessToken"]))
    assert out.status_code == 204, out.text
    assert _eventually(lambda: not _accepted(http, third["accessToken"]), timeout=5)
    resp = http.get("/api/v1/devices", headers=bearer(third["accessToken"]))
    _assert_error(resp, 401, "invalid_token")
    refused = http.post("/api/v1/auth/refresh", json={"refreshToken": third["refreshToken"]})
    _assert_error(refused, 401, "invalid_token")


def test_wrong_password_or_unknown_email_is_one_generic_invalid_auth(
    http: httpx.Client, user: dict[str, Any]
) -> None:
    wrong = _login(http, user["email"], "not the password at all")
    unknown = _login(http, f"nobody-{uuid.uuid4().hex}@example.com")
    for resp in (wrong, unknown):
        _assert_error(resp, 401, "invalid_auth")
    assert wrong.json()["message"] == unknown.json()["message"]


def _signing_key(stack: DevStack, kid: str) -> Ed25519PrivateKey:
    """Identity's real private key (decrypted as identity does), so that each negative below
    differs from a valid token in exactly one respect."""
    secrets_ = json.loads((stack.base_dir / "secrets.json").read_text())
    dsn = stack.pg.admin_dsn if stack.pg is not None else os.environ["DATABASE_URL"]

    async def fetch() -> str:
        conn = await asyncpg.connect(dsn)
        try:
            return str(
                await conn.fetchval(
                    "SELECT private_key_enc FROM identity.signing_key_secrets WHERE kid = $1", kid
                )
            )
        finally:
            await conn.close()

    pem = Fernet(secrets_["identity_key_encryption_key"].encode()).decrypt(
        asyncio.run(fetch()).encode()
    )
    key = serialization.load_pem_private_key(pem, password=None)
    assert isinstance(key, Ed25519PrivateKey)
    return key


def _forge_hs256(claims: dict[str, Any], secret: bytes, kid: str) -> str:
    b64 = jwt.utils.base64url_encode
    header = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": kid}).encode())
    payload = b64(json.dumps(claims).encode())
    signature = b64(hmac.new(secret, header + b"." + payload, hashlib.sha256).digest())
    return (header + b"." + payload + b"." + signature).decode()


def test_forged_and_stale_tokens_are_invalid_token(
    stack: DevStack, http: httpx.Client, user: dict[str, Any]
) -> None:
    tokens = _session(http, user)
    good = tokens["accessToken"]
    assert _eventually(lambda: _accepted(http, good))
    kid = jwt.get_unverified_header(good)["kid"]
    claims = jwt.decode(good, options={"verify_signature": False})
    real = _signing_key(stack, kid)
    # Re-signing the same claims with the real key is accepted: the negatives are meaningful.
    assert _accepted(http, jwt.encode(claims, real, algorithm="EdDSA", headers={"kid": kid}))
    public_pem = real.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    now = int(time.time())
    header = {"kid": kid}
    forged = {
        "alg none": jwt.encode(claims, None, algorithm="none", headers=header),
        "HS256 with the public key": _forge_hs256(claims, public_pem, kid),
        "wrong key, same kid": jwt.encode(
            claims, Ed25519PrivateKey.generate(), algorithm="EdDSA", headers=header
        ),
        "expired": jwt.encode(
            {**claims, "iat": now - 3600, "exp": now - 600}, real, algorithm="EdDSA", headers=header
        ),
        "unknown kid": jwt.encode(claims, real, algorithm="EdDSA", headers={"kid": "k-unknown"}),
        "wrong audience": jwt.encode(
            {**claims, "aud": "another-api"}, real, algorithm="EdDSA", headers=header
        ),
        "wrong issuer": jwt.encode(
            {**claims, "iss": "someone"}, real, algorithm="EdDSA", headers=header
        ),
        "tampered claims": good.split(".")[0]
        + "."
        + jwt.utils.base64url_encode(json.dumps({**claims, "role": "owner"}).encode()).decode()
        + "."
        + good.split(".")[2],
    }
    for name, token in forged.items():
        resp = http.get("/api/v1/devices", headers=bearer(token))
        assert resp.status_code == 401, f"{name}: {resp.status_code} {resp.text}"
        assert resp.json()["type"] == "invalid_token", name
