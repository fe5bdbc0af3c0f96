"""A third party verifies Outpost's tokens with a standard library (decision 78): PyJWT's
``PyJWKClient`` reads ``/.well-known/jwks.json`` and verifies a session token and an OAuth
access token, and, after ``outpost-identity rotate-signing-key``, both the new key's tokens
and the previous key's during the overlap (docs/design/reliability.md "authn")."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from _keys import bearer, fresh_key
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from outpost_devkit.dev.stack import DevStack
from outpost_kit.db.provision import service_dsn
from outpost_kit.material import KEY_ENCRYPTION_KEY

pytestmark = pytest.mark.e2e

PASSWORD = "correct horse battery staple"


def _verify(client: jwt.PyJWKClient, token: str) -> dict[str, Any]:
    key = client.get_signing_key_from_jwt(token)
    claims: dict[str, Any] = jwt.decode(
        token, key, algorithms=["EdDSA"], audience="outpost-api", issuer="outpost-identity"
    )
    return claims


def _rotate(stack: DevStack) -> str:
    passwords = stack._passwords()
    env = {
        "PATH": str(Path(sys.executable).parent),
        "OUTPOST_NATS_URL": stack.nats_service_url("identity"),
        **stack.nats_tls_env(),
        "OUTPOST_IDENTITY_DATABASE_URL": service_dsn(
            stack.admin_dsn, "identity", passwords["identity"]
        ),
        "OUTPOST_IDENTITY_KEY_ENCRYPTION_KEY": passwords[KEY_ENCRYPTION_KEY],
    }
    result = subprocess.run(
        [str(Path(sys.executable).parent / "outpost-identity"), "rotate-signing-key"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout.strip().splitlines()[-1]


def test_a_third_party_verifies_session_and_oauth_tokens_across_a_rotation(
    http: httpx.Client, platform: dict[str, Any], stack: DevStack
) -> None:
    url = f"{platform['gatewayUrl']}/.well-known/jwks.json"
    published = httpx.get(url, timeout=10)  # no credential
    assert published.status_code == 200, published.text
    assert published.headers["cache-control"].startswith("public, max-age=")
    assert all(
        (k["kty"], k["crv"], k["alg"], k["use"]) == ("OKP", "Ed25519", "EdDSA", "sig")
        for k in published.json()["keys"]
    )

    key = fresh_key(http, platform, "jwks")
    email = f"jwks-{uuid.uuid4().hex[:8]}@example.com"
    made = http.post(
        "/api/v1/users",
        json={"email": email, "password": PASSWORD, "role": "viewer"},
        headers=bearer(key),
    )
    assert made.status_code == 201, made.text
    client = http.post(
        "/api/v1/oauth-clients",
        json={"name": "ci", "scopes": ["devices:read"]},
        headers=bearer(key),
    )
    assert client.status_code == 201, client.text
    basic = (client.json()["clientId"], client.json()["clientSecret"])

    def session() -> str:
        resp = http.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
        assert resp.status_code == 200, resp.text
        return str(resp.json()["accessToken"])

    def oauth() -> str:
        resp = http.post("/auth/oauth/token", data={"grant_type": "client_credentials"}, auth=basic)
        assert resp.status_code == 200, resp.text
        return str(resp.json()["access_token"])

    # Caches the set and fetches it again on an unknown kid, at most once per
    # cooldown_duration (30 s by default; none here, as if that long had passed).
    verifier = jwt.PyJWKClient(url, cooldown_duration=0)
    before = (session(), oauth())
    assert _verify(verifier, before[0])["sub"] == made.json()["id"]
    assert _verify(verifier, before[1])["client_id"] == basic[0]
    old_kid = jwt.get_unverified_header(before[0])["kid"]

    new_kid = _rotate(stack)
    assert new_kid and new_kid != old_kid, new_kid
    # The gateway learns the new key from identity's event; identity signs with it at once.
    deadline = time.monotonic() + 15
    while True:
        after = (session(), oauth())
        if jwt.get_unverified_header(after[0])["kid"] == new_kid:
            break
        assert time.monotonic() < deadline, "identity did not sign with the new key"
        time.sleep(0.2)
    kids = [k["kid"] for k in httpx.get(url, timeout=10).json()["keys"]]
    assert old_kid in kids and new_kid in kids  # the overlap
    for token in (*after, *before):  # new tokens, and the old key's within its overlap
        claims = _verify(verifier, token)
        assert claims["iss"] == "outpost-identity"
    assert jwt.get_unverified_header(after[1])["kid"] == new_kid
    # A forged token (another key, the new kid) is refused by the third party too.
    forged = jwt.encode(
        jwt.decode(after[0], options={"verify_signature": False}),
        Ed25519PrivateKey.generate(),
        algorithm="EdDSA",
        headers={"kid": new_kid},
    )
    with pytest.raises(jwt.InvalidSignatureError):
        _verify(verifier, forged)
