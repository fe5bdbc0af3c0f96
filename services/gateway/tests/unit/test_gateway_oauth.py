"""OAuth2 client-credentials: access tokens verified locally as OAUTH_CLIENT principals and
refused once the client is deleted; the token endpoint's parsing and RFC 6749 §5.2 errors."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from gateway_testkit import FakeBackend, build_world, envelope
from litestar.testing import TestClient

from outpost_contracts import tokens
from outpost_contracts.envelope import PLATFORM_ORG_ID, PrincipalKind
from outpost_contracts.errors import (
    ErrorType,
    OutpostError,
    ServiceUnavailable,
    validation_error,
)
from outpost_contracts.identity import (
    ISSUE_CLIENT_TOKEN,
    ClientTokenIssued,
    OAuthClientDeleted,
    OrganizationSuspended,
    SigningKeyPublished,
)
from outpost_gateway.adapters.session_tokens import JwtVerifier
from outpost_gateway.domain.auth import ClientClaims, authenticate
from outpost_gateway.domain.credentials import CredentialCache, evolve
from outpost_gateway.domain.oauth import OAuthError, parse_token_request

pytestmark = pytest.mark.unit

KID = "key-1"
ORG = UUID("11111111-1111-1111-1111-111111111111")
FORM = "application/x-www-form-urlencoded"


@pytest.fixture
def world() -> dict[str, Any]:
    key = Ed25519PrivateKey.generate()
    now = datetime.now(UTC)
    cache = CredentialCache()
    pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    evolve(
        cache,
        envelope(
            PLATFORM_ORG_ID,
            uuid4(),
            SigningKeyPublished(
                kid=KID,
                algorithm="EdDSA",
                public_key_pem=pem.decode(),
                not_before=now - timedelta(hours=1),
                not_after=now + timedelta(days=1),
            ),
        ),
    )
    return {"key": key, "cache": cache, "now": now, "client": uuid4()}


def client_claims(w: dict[str, Any], **over: Any) -> dict[str, Any]:
    claims: dict[str, Any] = {
        "sub": str(w["client"]),
        "org": str(ORG),
        "client_id": "oc_" + ORG.hex + w["client"].hex,
        "scope": "devices:read",
        "aud": tokens.AUDIENCE,
        "iss": tokens.ISSUER,
        "iat": int(w["now"].timestamp()),
        "exp": int((w["now"] + timedelta(minutes=15)).timestamp()),
        "jti": "j1",
    }
    claims.update(over)
    return {k: v for k, v in claims.items() if v is not None}


def sign(w: dict[str, Any], claims: dict[str, Any]) -> str:
    return jwt.encode(claims, w["key"], algorithm="EdDSA", headers={"kid": KID})


def auth(w: dict[str, Any], token: str) -> Any:
    return authenticate(f"Bearer {token}", w["cache"], w["now"], JwtVerifier(w["cache"]))


def test_a_client_token_is_an_oauth_client_principal(world: dict[str, Any]) -> None:
    principal = auth(world, sign(world, client_claims(world, scope="devices:read readings:*")))
    assert principal.kind is PrincipalKind.OAUTH_CLIENT
    assert principal.id == world["client"] and principal.org_id == ORG
    assert principal.scopes == ("devices:read", "readings:*")
    assert principal.role is None and principal.session_id is None


def test_verifier_returns_client_claims(world: dict[str, Any]) -> None:
    claims = JwtVerifier(world["cache"])(sign(world, client_claims(world)), world["now"])
    assert isinstance(claims, ClientClaims) and claims.client_id.startswith("oc_")


def _refused(world: dict[str, Any], token: str) -> None:
    with pytest.raises(OutpostError) as err:
        auth(world, token)
    assert err.value.type is ErrorType.INVALID_TOKEN


def test_a_deleted_clients_tokens_are_refused(world: dict[str, Any]) -> None:
    token = sign(world, client_claims(world))
    auth(world, token)
    evolve(world["cache"], envelope(ORG, world["client"], OAuthClientDeleted(client_id="oc_x")))
    _refused(world, token)


def test_a_suspended_organizations_client_tokens_are_refused(world: dict[str, Any]) -> None:
    token = sign(world, client_claims(world))
    evolve(world["cache"], envelope(ORG, ORG, OrganizationSuspended(reason="x")))
    _refused(world, token)


@pytest.mark.parametrize(
    "over",
    [
        {"client_id": None},  # then it must be a session token, and has no sid/role
        {"sid": str(uuid4())},  # a client token must not look like a session's
        {"role": "owner"},
        {"jti": None},
        {"org": None},
        {"aud": "someone-else"},
        {"client_id": 7},
        {"exp": 1},
    ],
)
def test_malformed_client_tokens_are_refused(world: dict[str, Any], over: dict[str, Any]) -> None:
    _refused(world, sign(world, client_claims(world, **over)))


def test_a_client_token_signed_by_another_key_is_refused(world: dict[str, Any]) -> None:
    other = Ed25519PrivateKey.generate()
    _refused(
        world, jwt.encode(client_claims(world), other, algorithm="EdDSA", headers={"kid": KID})
    )


# --- parsing the token request ----------------------------------------------------------


def basic(client_id: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


def test_form_credentials() -> None:
    grant = parse_token_request(
        FORM, b"grant_type=client_credentials&client_id=oc_a&client_secret=s3", None
    )
    assert (grant.client_id, grant.client_secret, grant.scope) == ("oc_a", "s3", None)


def test_basic_credentials_and_scope() -> None:
    grant = parse_token_request(
        f"{FORM}; charset=UTF-8",
        b"grant_type=client_credentials&scope=devices%3Aread+readings%3Aread",
        basic("oc_a", "s3"),
    )
    assert (grant.client_id, grant.client_secret) == ("oc_a", "s3")
    assert grant.scope == ("devices:read", "readings:read")


@pytest.mark.parametrize(
    ("content_type", "body", "authorization", "error", "status"),
    [
        ("application/json", b'{"grant_type":"client_credentials"}', None, "invalid_request", 400),
        (None, b"grant_type=client_credentials", None, "invalid_request", 400),
        (FORM, b"client_id=a&client_secret=b", None, "invalid_request", 400),
        (
            FORM,
            b"grant_type=client_credentials&grant_type=client_credentials",
            None,
            "invalid_request",
            400,
        ),
        (
            FORM,
            b"grant_type=password&client_id=a&client_secret=b",
            None,
            "unsupported_grant_type",
            400,
        ),
        (FORM, b"grant_type=client_credentials", None, "invalid_client", 401),
        (FORM, b"grant_type=client_credentials&client_id=a", None, "invalid_client", 401),
        (FORM, b"grant_type=client_credentials", "Basic !!!", "invalid_client", 401),
        (FORM, b"grant_type=client_credentials", "Bearer x", "invalid_client", 401),
        (
            FORM,
            b"grant_type=client_credentials&client_secret=b",
            basic("a", "b"),
            "invalid_request",
            400,
        ),
        (
            FORM,
            b"grant_type=client_credentials&client_id=z",
            basic("a", "b"),
            "invalid_request",
            400,
        ),
        (
            FORM,
            b"grant_type=client_credentials&scope=DROP%20TABLE",
            basic("a", "b"),
            "invalid_scope",
            400,
        ),
    ],
)
def test_token_request_errors(
    content_type: str | None, body: bytes, authorization: str | None, error: str, status: int
) -> None:
    with pytest.raises(OAuthError) as err:
        parse_token_request(content_type, body, authorization)
    assert (err.value.error, err.value.status) == (error, status)
    if status == 401:
        assert err.value.headers()["WWW-Authenticate"] == 'Basic realm="outpost"'


# --- the endpoint ---------------------------------------------------------------------------


@pytest.fixture
def client_env() -> Iterator[tuple[TestClient[Any], FakeBackend]]:
    from test_gateway_http import make_app

    backend = FakeBackend()
    with TestClient(make_app(backend, build_world()), raise_server_exceptions=False) as client:
        yield client, backend


GOOD = {"grant_type": "client_credentials", "client_id": "oc_a", "client_secret": "s"}


def test_token_endpoint_success(client_env: tuple[TestClient[Any], FakeBackend]) -> None:
    client, backend = client_env
    backend.on(
        ISSUE_CLIENT_TOKEN,
        ClientTokenIssued(access_token="t", token_type="bearer", expires_in=900, scope="a:read"),
    )
    resp = client.post("/auth/oauth/token", data=GOOD)
    assert resp.status_code == 200, resp.text
    assert resp.json() == {
        "access_token": "t",
        "token_type": "bearer",
        "expires_in": 900,
        "scope": "a:read",
    }
    assert resp.headers["cache-control"] == "no-store" and resp.headers["pragma"] == "no-cache"
    assert resp.headers["x-request-id"]
    assert backend.last.ctx.principal.kind is PrincipalKind.ANONYMOUS


@pytest.mark.parametrize(
    ("raised", "status", "error"),
    [
        (OutpostError("no", type=ErrorType.INVALID_AUTH), 401, "invalid_client"),
        (validation_error("scope", "no"), 400, "invalid_scope"),
        (ServiceUnavailable("later"), 503, "temporarily_unavailable"),
    ],
)
def test_token_endpoint_maps_identity_errors(
    client_env: tuple[TestClient[Any], FakeBackend], raised: Exception, status: int, error: str
) -> None:
    client, backend = client_env
    backend.on(ISSUE_CLIENT_TOKEN, raised)
    resp = client.post("/auth/oauth/token", data=GOOD)
    assert resp.status_code == status
    assert resp.json() == {"error": error, "error_description": resp.json()["error_description"]}
    assert set(resp.json()) == {"error", "error_description"}
    assert resp.headers["x-request-id"]
    if status == 401:
        assert resp.headers["www-authenticate"] == 'Basic realm="outpost"'


def test_token_endpoint_refuses_json(client_env: tuple[TestClient[Any], FakeBackend]) -> None:
    client, backend = client_env
    resp = client.post("/auth/oauth/token", json=GOOD)
    assert resp.status_code == 400 and resp.json()["error"] == "invalid_request"
    assert not backend.calls
