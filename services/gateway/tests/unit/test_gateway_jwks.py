"""``/.well-known/jwks.json``: the token signing keys as a JWK Set a third party verifies
with (decision 78), from the gateway's event-fed cache, with the rotation overlap."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from uuid import uuid4

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from gateway_testkit import FakeBackend, build_world, envelope
from litestar.testing import TestClient

from outpost_contracts.envelope import PLATFORM_ORG_ID
from outpost_contracts.identity import SigningKeyPublished, SigningKeyRetired
from outpost_gateway.app.rate_limiter import MemoryStore
from outpost_gateway.bootstrap import create_app
from outpost_gateway.domain import jwks
from outpost_gateway.domain.credentials import CredentialCache, evolve
from outpost_gateway.settings import GatewaySettings

pytestmark = pytest.mark.unit

NOW = datetime(2026, 12, 1, tzinfo=UTC)


def _pem(key: Ed25519PrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def _publish(cache: CredentialCache, kid: str, key: Ed25519PrivateKey, **over: object) -> None:
    fields: dict[str, object] = {
        "kid": kid,
        "algorithm": "EdDSA",
        "public_key_pem": _pem(key),
        "not_before": NOW - timedelta(days=1),
        "not_after": NOW + timedelta(days=90),
    }
    fields.update(over)
    evolve(cache, envelope(PLATFORM_ORG_ID, uuid4(), SigningKeyPublished(**fields)))  # type: ignore[arg-type]


def _retire(cache: CredentialCache, kid: str, until: datetime) -> None:
    evolve(
        cache, envelope(PLATFORM_ORG_ID, uuid4(), SigningKeyRetired(kid=kid, verify_until=until))
    )


def test_the_raw_key_is_read_from_the_pem() -> None:
    key = Ed25519PrivateKey.generate()
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    assert jwks.ed25519_raw(_pem(key)) == raw
    assert jwks.ed25519_raw("not a pem") is None
    assert jwks.ed25519_raw("-----BEGIN PUBLIC KEY-----\n!!\n-----END PUBLIC KEY-----") is None


def test_every_key_in_its_overlap_is_in_the_set_and_no_other() -> None:
    """``authn``: the active key, the one retired within its overlap, a key published ahead
    of use; never one past its overlap, revoked (overlap ended) or expired."""
    cache = CredentialCache()
    keys = {kid: Ed25519PrivateKey.generate() for kid in ("old", "prev", "now", "next", "exp")}
    for kid, key in keys.items():
        _publish(cache, kid, key)
    _publish(cache, "exp", keys["exp"], not_after=NOW - timedelta(seconds=1))
    _publish(cache, "next", keys["next"], not_before=NOW + timedelta(hours=1))
    _retire(cache, "old", NOW - timedelta(seconds=1))
    _retire(cache, "prev", NOW + timedelta(minutes=15))
    found = jwks.jwk_set(cache.signing_keys.values(), NOW)
    assert sorted(k["kid"] for k in found["keys"]) == ["next", "now", "prev"]
    for entry in found["keys"]:
        assert set(entry) == {"kty", "crv", "x", "kid", "alg", "use"}
        assert (entry["kty"], entry["crv"], entry["alg"], entry["use"]) == (
            "OKP",
            "Ed25519",
            "EdDSA",
            "sig",
        )
        # A standard library reads it back as the key that signs.
        public = jwt.PyJWK(entry).key
        token = jwt.encode({"sub": "x"}, keys[entry["kid"]], algorithm="EdDSA")
        assert jwt.decode(token, public, algorithms=["EdDSA"]) == {"sub": "x"}
    assert (
        jwks.jwk_set(cache.signing_keys.values(), NOW + timedelta(minutes=16))["keys"]
        != (found["keys"])
    )


def test_the_route_is_public_cacheable_and_documented() -> None:
    world = build_world()
    key = Ed25519PrivateKey.generate()
    _publish(world.cache, "k1", key, not_before=datetime.now(UTC) - timedelta(hours=1))
    app = create_app(
        GatewaySettings(), FakeBackend(), world.cache, store=MemoryStore(), clock=lambda: NOW
    )
    with TestClient(app) as client:
        resp = client.get("/.well-known/jwks.json")  # no credential
        assert resp.status_code == 200, resp.text
        assert resp.headers["cache-control"] == f"public, max-age={jwks.MAX_AGE_SECONDS}"
        assert resp.headers["content-type"].startswith("application/json")
        body = resp.json()
        assert [k["kid"] for k in body["keys"]] == ["k1"]
        assert "x-ratelimit-limit" not in resp.headers
        token = jwt.encode(
            {"sub": "a", "exp": int(time.time()) + 60},
            key,
            algorithm="EdDSA",
            headers={"kid": "k1"},
        )
        signing = jwt.PyJWKSet.from_dict(body)["k1"]
        assert jwt.decode(token, signing.key, algorithms=["EdDSA"])["sub"] == "a"
        document = client.get("/api/v3/api-docs").json()
        operation = document["paths"]["/.well-known/jwks.json"]["get"]
        assert "security" not in operation or operation["security"] in ([], [{}])
        assert "200" in operation["responses"]
