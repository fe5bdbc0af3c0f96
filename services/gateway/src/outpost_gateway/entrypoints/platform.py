"""Platform routes: health, readiness, metrics, the API's documents (the contracts' JSON
Schemas, the event streams' AsyncAPI document) and the token signing keys
(``/.well-known/jwks.json``)."""

from __future__ import annotations

from functools import cache
from typing import Any, Literal

import msgspec
from litestar import Request, Response, get
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from outpost_contracts import asyncapi
from outpost_contracts.errors import ServiceUnavailable
from outpost_contracts.schemas import json_schemas
from outpost_gateway.domain import jwks
from outpost_gateway.entrypoints.security import gateway_state

Req = Request[Any, Any, Any]


@get("/healthz", include_in_schema=False)
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@get("/readyz", include_in_schema=False)
async def readyz(request: Req) -> dict[str, str]:
    failing = gateway_state(request).readiness.failing()
    if failing:
        raise ServiceUnavailable(f"not ready: {', '.join(failing)}")
    return {"status": "ready"}


@get("/metrics", include_in_schema=False)
async def metrics(request: Req) -> Response[bytes]:
    # The app's own registry (HTTP, rate limits) and the process's (the kit's metrics,
    # process and runtime figures); their names do not overlap.
    body = generate_latest(gateway_state(request).metrics.registry) + generate_latest(REGISTRY)
    # The header as prometheus_client spells it: ``media_type`` would have Litestar append a
    # second ``charset`` to a text/ type, a media type Prometheus 3 refuses (decision 77).
    return Response(body, headers={"Content-Type": CONTENT_TYPE_LATEST})


@cache
def _schemas() -> dict[str, Any]:
    return json_schemas()


@get("/api/schemas", include_in_schema=False)
async def schemas() -> dict[str, Any]:
    return _schemas()


@get("/api/asyncapi", include_in_schema=False)
async def asyncapi_document() -> dict[str, Any]:
    """Every subject an integration may subscribe to, with the payload schemas of
    ``/api/schemas`` (AsyncAPI 3.0, decision 95)."""
    return asyncapi.document()


class JsonWebKey(msgspec.Struct, frozen=True, kw_only=True):
    """An Ed25519 public key that verifies access tokens whose header names ``kid``
    (RFC 7517, RFC 8037)."""

    kty: Literal["OKP"]
    crv: Literal["Ed25519"]
    x: str  # the raw public key, base64url without padding
    kid: str
    alg: Literal["EdDSA"]
    use: Literal["sig"]


class JsonWebKeySet(msgspec.Struct, frozen=True, kw_only=True):
    """Every key that verifies session and OAuth access tokens now, the previous one during
    its rotation overlap included (decision 78)."""

    keys: list[JsonWebKey]


@get(
    "/.well-known/jwks.json",
    tags=["auth"],
    operation_id="GetSigningKeys",
    summary="The keys that verify access tokens (JWK Set)",
    description=(
        "Public, unauthenticated. A JWK Set (RFC 7517) of the Ed25519 keys (`kty: OKP`, "
        "`crv: Ed25519`, `alg: EdDSA`) that verify session and OAuth access tokens, "
        "matched by the token header's `kid`; a key stays in the set until its rotation "
        "overlap ends. Cacheable for a few minutes: fetch again on an unknown `kid`."
    ),
)
async def jwks_json(request: Req) -> Response[JsonWebKeySet]:
    state = gateway_state(request)
    body = msgspec.convert(
        jwks.jwk_set(state.cache.signing_keys.values(), state.clock()), JsonWebKeySet
    )
    return Response(
        body,
        headers={"Cache-Control": f"public, max-age={jwks.MAX_AGE_SECONDS}"},
    )


ROUTES = [healthz, readyz, metrics, schemas, asyncapi_document, jwks_json]
