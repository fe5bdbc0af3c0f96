"""Session access tokens: verified locally against published keys; every forgery is
``invalid_token``; a revoked session is refused."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from gateway_testkit import envelope

from outpost_contracts.envelope import PLATFORM_ORG_ID, PrincipalKind
from outpost_contracts.errors import ErrorType, OutpostError
from outpost_contracts.identity import SessionRevoked, SigningKeyPublished, SigningKeyRetired
from outpost_gateway.adapters.session_tokens import JwtVerifier
from outpost_gateway.domain.auth import authenticate
from outpost_gateway.domain.credentials import CredentialCache, evolve

pytestmark = pytest.mark.unit

KID = "key-1"


def forge_hs256(claims: dict[str, Any], secret: bytes, kid: str) -> str:
    """A token PyJWT itself refuses to make (it will not use a PEM key as an HMAC secret)."""
    b64 = jwt.utils.base64url_encode
    header = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": kid}).encode())
    payload = b64(json.dumps(claims).encode())
    signature = b64(hmac.new(secret, header + b"." + payload, hashlib.sha256).digest())
    return (header + b"." + payload + b"." + signature).decode()


def _pem(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


@pytest.fixture
def world() -> dict[str, Any]:
    key = Ed25519PrivateKey.generate()
    now = datetime.now(UTC)
    cache = CredentialCache()
    published = SigningKeyPublished(
        kid=KID,
        algorithm="EdDSA",
        public_key_pem=_pem(key).decode(),
        not_before=now - timedelta(hours=1),
        not_after=now + timedelta(days=1),
    )
    evolve(cache, envelope(PLATFORM_ORG_ID, uuid4(), published))
    return {"key": key, "cache": cache, "now": now}


def _claims(**over: Any) -> dict[str, Any]:
    t = int(time.time())
    claims = {
        "sub": str(uuid4()),
        "org": str(uuid4()),
        "role": "viewer",
        "scope": "*:read",
        "aud": "outpost-api",
        "iss": "outpost-identity",
        "iat": t,
        "exp": t + 900,
        "jti": "j",
        "sid": str(uuid4()),
    }
    claims.update(over)
    return claims


def _auth(world: dict[str, Any], token: str):  # type: ignore[no-untyped-def]
    cache = world["cache"]
    return authenticate(f"Bearer {token}", cache, datetime.now(UTC), JwtVerifier(cache))


def _refused(world: dict[str, Any], token: str) -> None:
    with pytest.raises(OutpostError) as exc:
        _auth(world, token)
    assert exc.value.type is ErrorType.INVALID_TOKEN


def test_a_good_token_is_a_user_principal(world: dict[str, Any]) -> None:
    claims = _claims()
    token = jwt.encode(claims, world["key"], algorithm="EdDSA", headers={"kid": KID})
    p = _auth(world, token)
    assert p.kind is PrincipalKind.USER
    assert (str(p.id), str(p.org_id), p.role, p.scopes, str(p.session_id)) == (
        claims["sub"],
        claims["org"],
        "viewer",
        ("*:read",),
        claims["sid"],
    )


def test_forgeries_are_invalid_token(world: dict[str, Any]) -> None:
    key = world["key"]
    good = {"kid": KID}
    none_token = jwt.encode(_claims(), None, algorithm="none", headers=good)
    hs256 = forge_hs256(_claims(), _pem(key), KID)  # the public key's bytes as HMAC secret
    other = Ed25519PrivateKey.generate()
    for token in (
        none_token,
        hs256,
        jwt.encode(_claims(), other, algorithm="EdDSA", headers=good),  # wrong key, same kid
        jwt.encode(_claims(exp=int(time.time()) - 60), key, algorithm="EdDSA", headers=good),
        jwt.encode(_claims(), key, algorithm="EdDSA", headers={"kid": "nope"}),
        jwt.encode(_claims(), key, algorithm="EdDSA"),  # no kid
        jwt.encode(_claims(aud="someone-else"), key, algorithm="EdDSA", headers=good),
        jwt.encode(_claims(iss="evil"), key, algorithm="EdDSA", headers=good),
        jwt.encode(
            {"sub": "x", "exp": int(time.time()) + 60}, key, algorithm="EdDSA", headers=good
        ),
        "not.a.jwt",
        "garbage",
    ):
        _refused(world, token)


def test_revoked_sessions_and_retired_keys(world: dict[str, Any]) -> None:
    claims = _claims()
    token = jwt.encode(claims, world["key"], algorithm="EdDSA", headers={"kid": KID})
    cache: CredentialCache = world["cache"]
    evolve(cache, envelope(uuid4(), uuid4(), SessionRevoked(reason="logout")))
    assert _auth(world, token).kind is PrincipalKind.USER  # another session
    sid = UUID(claims["sid"])
    evolve(cache, envelope(uuid4(), sid, SessionRevoked(reason="logout")))
    _refused(world, token)

    token = jwt.encode(_claims(), world["key"], algorithm="EdDSA", headers={"kid": KID})
    now = datetime.now(UTC)
    retire = SigningKeyRetired(kid=KID, verify_until=now + timedelta(minutes=15))
    evolve(cache, envelope(PLATFORM_ORG_ID, uuid4(), retire))
    assert _auth(world, token).kind is PrincipalKind.USER  # the overlap
    retire = SigningKeyRetired(kid=KID, verify_until=now - timedelta(seconds=1))
    evolve(cache, envelope(PLATFORM_ORG_ID, uuid4(), retire))
    _refused(world, token)


def test_revoked_sessions_are_forgotten_once_their_tokens_have_expired(
    world: dict[str, Any],
) -> None:
    cache: CredentialCache = world["cache"]
    claims = _claims()
    token = jwt.encode(claims, world["key"], algorithm="EdDSA", headers={"kid": KID})
    sid = UUID(claims["sid"])
    revoked = envelope(uuid4(), sid, SessionRevoked(reason="logout"))
    evolve(cache, revoked)
    assert cache.forget_revoked_sessions(revoked.occurred_at) == 0  # not before it
    _refused(world, token)
    assert cache.forget_revoked_sessions(revoked.occurred_at + timedelta(seconds=1)) == 1
    assert not cache.session_revoked(sid) and cache.revoked_sessions == {}
