"""A credential's rate limits (per category, per minute) and Idempotency-Key at the HTTP
edge.

The security check (``security.py``, the app's ``before_request`` hook, decision 48) calls
``rate_limit`` once the credential is known, which counts the request (429 ``throttled``
when over the limit), and ``claim_idempotency_key``, which for a POST with
``Idempotency-Key`` claims the key or answers from the first response. The edge
(``edge.py``) sends every response through ``limits_send``, so that every response to a
counted request, error or not, carries the ``X-RateLimit-*`` headers and the response to a
claimed key is stored before its last byte is sent; ``release_unanswered`` frees a key
whose response never went out. The request size bounds are ``bounds.py``'s, the public
routes' throttle ``public.py``'s.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from litestar import Request, Response
from litestar.connection import ASGIConnection
from litestar.types import Message, Scope, Send

from outpost_contracts.envelope import Principal
from outpost_contracts.errors import Conflict, ErrorType, OutpostError, validation_error
from outpost_gateway.app.ports import IdempotencyStore
from outpost_gateway.app.rate_limiter import RateLimiter
from outpost_gateway.domain import idempotency
from outpost_gateway.domain.idempotency import StoredResponse, Verdict
from outpost_gateway.domain.ratelimit import Category, Decision

_log = logging.getLogger(__name__)

DECISION_KEY = "outpost.ratelimit"
CLAIM_KEY = "outpost.idempotency"


@dataclass
class Claim:
    store: IdempotencyStore
    credential_id: UUID
    key: str
    org_id: UUID
    status: int = 0
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: list[bytes] = field(default_factory=list)


class IdempotentReplay(Exception):
    def __init__(self, response: StoredResponse) -> None:
        super().__init__("idempotent replay")
        self.response = response


def on_replay(request: Request[Any, Any, Any], exc: IdempotentReplay) -> Response[bytes]:
    stored = exc.response
    headers = {k: v for k, v in stored.headers if k.lower() != "content-type"}
    headers[idempotency.REPLAYED_HEADER] = "true"
    media = next((v for k, v in stored.headers if k.lower() == "content-type"), None)
    return Response(
        content=stored.body,
        status_code=stored.status,
        headers=headers,
        media_type=media or "application/json",
    )


async def rate_limit(
    connection: ASGIConnection[Any, Any, Any, Any],
    limiter: RateLimiter,
    principal: Principal,
    category: Category,
) -> None:
    decision = await limiter.check(principal, category)
    connection.scope[DECISION_KEY] = decision  # type: ignore[literal-required]
    if not decision.admitted:
        raise OutpostError(decision.message(), type=ErrorType.THROTTLED)


async def claim_idempotency_key(
    connection: ASGIConnection[Any, Any, Any, Any],
    store: IdempotencyStore,
    principal: Principal,
    org_id: UUID,
) -> None:
    """For a POST with ``Idempotency-Key``: claim the key, or replay / refuse."""
    key = connection.headers.get(idempotency.HEADER)
    if key is None or connection.scope.get("method") != "POST":
        return
    key = key.strip()
    if not key or len(key) > idempotency.MAX_KEY_LENGTH:
        raise validation_error(
            idempotency.HEADER, f"must be 1 to {idempotency.MAX_KEY_LENGTH} characters"
        )
    scope = connection.scope
    body = await Request[Any, Any, Any](scope, receive=connection.receive).body()
    query = scope.get("query_string", b"").decode("latin-1")  # type: ignore[union-attr]
    request_hash = idempotency.fingerprint("POST", scope["path"], query, body)
    try:
        record = await store.claim(principal.id, key, org_id, request_hash)
    except Exception as exc:
        _log.warning("idempotency store unavailable: %s: %s", type(exc).__name__, exc)
        raise OutpostError(
            "Idempotency-Key cannot be honoured right now; retry later",
            type=ErrorType.SERVICE_UNAVAILABLE,
        ) from None
    if record is None:
        scope[CLAIM_KEY] = Claim(store, principal.id, key, org_id)  # type: ignore[literal-required]
        return
    verdict = idempotency.judge(record, request_hash)
    if verdict is Verdict.MISMATCH:
        raise Conflict(f"Idempotency-Key {key!r} was already used with another request")
    if verdict is Verdict.IN_FLIGHT:
        raise Conflict(f"a request with Idempotency-Key {key!r} is still in progress")
    assert record.response is not None
    raise IdempotentReplay(record.response)


def decision_of(scope: Scope) -> Decision | None:
    found = scope.get(DECISION_KEY)  # type: ignore[call-overload]
    return found if isinstance(found, Decision) else None


def _claim_of(scope: Scope) -> Claim | None:
    found = scope.get(CLAIM_KEY)  # type: ignore[call-overload]
    return found if isinstance(found, Claim) else None


def limits_send(scope: Scope, send: Send) -> Send:
    async def send_with_limits(message: Message) -> None:
        claim = _claim_of(scope)
        if message["type"] == "http.response.start":
            decision = decision_of(scope)
            if decision is not None:
                headers = list(message.get("headers", []))
                headers.extend((k.lower().encode(), v.encode()) for k, v in decision.headers())
                message = {**message, "headers": headers}  # type: ignore[typeddict-item]
            if claim is not None:
                claim.status = message["status"]
                claim.headers = [
                    (k.decode("latin-1"), v.decode("latin-1"))
                    for k, v in message.get("headers", [])
                ]
        elif message["type"] == "http.response.body" and claim is not None:
            claim.body.append(bytes(message.get("body", b"")))
            if not message.get("more_body", False):
                scope.pop(CLAIM_KEY, None)  # type: ignore[misc]
                await _finish(claim)
        await send(message)

    return send_with_limits


async def release_unanswered(scope: Scope) -> None:
    claim = scope.pop(CLAIM_KEY, None)  # type: ignore[misc]
    if claim is not None:  # no complete response went out: free the key
        claim.status = 500
        await _finish(claim)


async def _finish(claim: Claim) -> None:
    try:
        if idempotency.worth_keeping(claim.status):
            response = StoredResponse(
                status=claim.status,
                headers=idempotency.keep_headers(claim.headers),
                body=b"".join(claim.body),
            )
            await claim.store.complete(claim.credential_id, claim.key, claim.org_id, response)
        else:
            await claim.store.release(claim.credential_id, claim.key, claim.org_id)
    except Exception as exc:  # the claim times out and is taken over later
        _log.warning("could not record Idempotency-Key %r: %s", claim.key, exc)
