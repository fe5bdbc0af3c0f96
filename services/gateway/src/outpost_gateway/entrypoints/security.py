"""Authentication, authorization and tenancy for every route, in one check.

The check runs after routing (so unknown paths are 404 and wrong methods 405 before any
credential is asked for) and before the body is read or any parameter parsed: it is the
app's ``before_request`` hook. (Not a Litestar guard: Litestar hands every guard call a
``copy()`` of the route handler, a third of the check's cost.) It looks the route up in the domain's
policy table, fails closed when a route has no entry, and leaves the verified
``RequestContext`` on the connection for the handler. Rate limits and Idempotency-Key
(``entrypoints/rate_limit_and_idempotency.py``) need the credential, so they run here too.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from litestar import Request
from litestar.connection import ASGIConnection
from litestar.di import NamedDependency
from litestar.handlers.base import BaseRouteHandler
from litestar.params import SkipValidation

from outpost_contracts.envelope import PLATFORM_ORG_ID, Principal, RequestContext
from outpost_contracts.errors import ErrorType, OutpostError
from outpost_contracts.identity import GET_ORGANIZATION, GetOrganization
from outpost_gateway.app.key_usage import KeyUsage
from outpost_gateway.app.ports import ArtifactReader, Backend, IdempotencyStore
from outpost_gateway.app.public_throttle import PublicThrottle
from outpost_gateway.app.rate_limiter import RateLimiter
from outpost_gateway.app.readiness import Readiness
from outpost_gateway.app.timeline_stream import StreamLeases, TimelineHub
from outpost_gateway.domain.auth import SessionVerifier, authenticate
from outpost_gateway.domain.credentials import CredentialCache
from outpost_gateway.domain.downloads import DownloadSigner, SigningKey
from outpost_gateway.domain.policy import (
    ORGANIZATION_HEADER,
    PUBLIC,
    UNRECOGNIZED,
    UnknownOrganization,
    authorize,
    policy_for,
    rate_category,
    resolve_organization,
)
from outpost_gateway.domain.public_throttle import IPNetwork, client_address, public_route
from outpost_gateway.entrypoints.edge import HttpMetrics
from outpost_gateway.entrypoints.errors import request_id_of
from outpost_gateway.entrypoints.rate_limit_and_idempotency import (
    DECISION_KEY,
    claim_idempotency_key,
    rate_limit,
)

_log = logging.getLogger(__name__)

CTX_KEY = "outpost.ctx"


def ephemeral_key() -> SigningKey:
    """A download-link key for one process (a single gateway in development): links die
    with it."""
    return SigningKey("dev" + secrets.token_hex(4), secrets.token_bytes(32))


JSON_TYPES = ("application/json",)


@dataclass
class GatewayState:
    backend: Backend
    cache: CredentialCache
    readiness: Readiness
    metrics: HttpMetrics
    clock: Callable[[], datetime]
    limiter: RateLimiter
    idempotency: IdempotencyStore
    rate_limits: bool = True
    verify_session: SessionVerifier | None = None
    usage: KeyUsage = field(default_factory=KeyUsage)
    # Export downloads (decision 65): the signer of their links, the object store they are
    # read from, and the public base URL links start with (default: the request's own).
    downloads: DownloadSigner = field(default_factory=lambda: DownloadSigner([ephemeral_key()]))
    artifacts: ArtifactReader | None = None
    public_url: str = ""
    # The public routes' limits (decision 75) and the proxies whose X-Forwarded-For is read.
    public: PublicThrottle | None = None
    trusted_proxies: tuple[IPNetwork, ...] = ()
    # /events/stream (decision 96): the streams by organization, fed by the timeline
    # follower; each credential's open streams; the heartbeat interval.
    timeline: TimelineHub = field(default_factory=TimelineHub)
    stream_leases: StreamLeases = field(default_factory=lambda: StreamLeases(limit=5))
    stream_heartbeat_seconds: float = 15.0


def gateway_state(connection: ASGIConnection[Any, Any, Any, Any]) -> GatewayState:
    state: GatewayState = connection.app.state["gateway"]
    return state


async def _confirm_organization(
    state: GatewayState, unknown: UnknownOrganization, principal: Principal, request_id: str
) -> UUID:
    """Read-your-writes for the operator: an organization created a moment ago may not be in
    the event-fed cache yet, so ask identity before answering 404."""
    ctx = RequestContext(request_id=request_id, org_id=PLATFORM_ORG_ID, principal=principal)
    org = await state.backend.call(GET_ORGANIZATION, ctx, GetOrganization(id=unknown.org_id))
    return org.id


def _is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media in JSON_TYPES or (media.startswith("application/") and media.endswith("+json"))


async def security_guard(
    connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler
) -> None:
    scope = connection.scope
    method = scope.get("method", "GET")  # type: ignore[call-overload]
    required = policy_for(str(method), str(scope.get("path_template", "")))
    if required is None:
        _log.error("route %s %s has no policy entry", method, scope.get("path_template"))
        raise OutpostError("internal server error", type=ErrorType.INTERNAL_SERVER_ERROR)
    if required == PUBLIC:
        await _limit_address(connection, str(method))
        return
    if required == UNRECOGNIZED:
        raise OutpostError("no such resource path", type=ErrorType.UNRECOGNIZED_REQUEST)
    state = gateway_state(connection)
    now = state.clock()
    principal = authenticate(
        connection.headers.get("authorization"), state.cache, now, state.verify_session
    )
    state.usage.note(principal, now)  # lastUsedAt, reported in batches
    # Counted before authorization, so refused attempts count too.
    category = rate_category(str(method), str(scope.get("path_template", "")))
    if category is not None and state.rate_limits:
        await rate_limit(connection, state.limiter, principal, category)
    authorize(principal, required)
    try:
        org_id = resolve_organization(
            principal, required, connection.headers.get(ORGANIZATION_HEADER), state.cache
        )
    except UnknownOrganization as unknown:
        org_id = await _confirm_organization(state, unknown, principal, request_id_of(scope))
    data = handler.parsed_fn_signature.parameters.get("data")
    if (
        data is not None
        and not _is_json(connection.headers.get("content-type", ""))
        and not (data.is_optional and _no_body(connection.headers))
    ):
        raise OutpostError(
            "the request body must be application/json", type=ErrorType.UNSUPPORTED_MEDIA_TYPE
        )
    await claim_idempotency_key(connection, state.idempotency, principal, org_id)
    scope[CTX_KEY] = RequestContext(  # type: ignore[literal-required]
        request_id=request_id_of(scope), org_id=org_id, principal=principal
    )


async def _limit_address(connection: ASGIConnection[Any, Any, Any, Any], method: str) -> None:
    """A public route that checks a credential is counted against the client's address
    (decision 75), before its body is read: malformed requests count too."""
    route = public_route(method, str(connection.scope.get("path_template", "")))
    if route is None:
        return
    state = gateway_state(connection)
    if state.public is None or not state.rate_limits:
        return
    peer = connection.scope.get("client")
    address = client_address(
        peer[0] if peer else None,
        connection.headers.getall("x-forwarded-for", []),
        state.trusted_proxies,
    )
    decision = await state.public.by_address(route, address)
    connection.scope[DECISION_KEY] = decision  # type: ignore[literal-required]
    if not decision.admitted:
        raise OutpostError(decision.message(), type=ErrorType.THROTTLED)


def _no_body(headers: Any) -> bool:
    """The request has no body at all (an optional body, e.g. ``/acknowledge``'s comment,
    may be left out; a body that is there must be JSON)."""
    length = headers.get("content-length")
    if length is not None:
        return length.strip() == "0"
    return headers.get("transfer-encoding") is None


# What handlers declare to receive the verified context and the backend (injected by name;
# not re-validated: both are built by the gateway itself).
Ctx = NamedDependency[SkipValidation[RequestContext]]
BackendDep = NamedDependency[SkipValidation[Backend]]


async def security_check(request: Request[Any, Any, Any]) -> None:
    """The ``before_request`` hook: returning None lets the handler run."""
    await security_guard(request, request.route_handler)


def provide_ctx(request: Request[Any, Any, Any]) -> RequestContext:
    ctx: RequestContext = request.scope[CTX_KEY]  # type: ignore[literal-required]
    return ctx


def provide_backend(request: Request[Any, Any, Any], ctx: Ctx) -> Backend:
    """``ctx`` is not used: naming it makes this provider depend on ``provide_ctx``, so
    Litestar resolves the two one after the other. Independent dependencies are resolved
    concurrently, in an anyio task group spawning a task for each — about 5% of the
    gateway's CPU per request for two dictionary lookups (docs/benchmarks.md)."""
    return gateway_state(request).backend
