"""The public routes' limits at the HTTP edge (decision 75): the client address is counted
in the security check (``security.py``), the account here, once the body names it, and a
refused credential counts as the account's failure. Every response carries the tighter of
the two decisions' ``X-RateLimit-*`` headers (``rate_limit_and_idempotency.limits_send``)."""

from __future__ import annotations

from typing import Any, TypeVar

from litestar import Request

from outpost_contracts.envelope import PLATFORM_ORG_ID, Principal, PrincipalKind, RequestContext
from outpost_contracts.errors import ErrorType, OutpostError
from outpost_contracts.rpc import Operation
from outpost_gateway.domain.public_throttle import PublicRoute, account_of, is_failure, tighter
from outpost_gateway.entrypoints.errors import request_id_of
from outpost_gateway.entrypoints.rate_limit_and_idempotency import DECISION_KEY, decision_of
from outpost_gateway.entrypoints.security import gateway_state

Req = Request[Any, Any, Any]
Body = TypeVar("Body")
Reply = TypeVar("Reply")


def anonymous_context(request: Req) -> RequestContext:
    """The context of a public route's call: no principal has been verified yet."""
    return RequestContext(
        request_id=request_id_of(request.scope),
        org_id=PLATFORM_ORG_ID,
        principal=Principal(
            kind=PrincipalKind.ANONYMOUS, id=PLATFORM_ORG_ID, org_id=PLATFORM_ORG_ID
        ),
    )


async def limit_account(request: Req, route: PublicRoute, named: str) -> str:
    """Count the request against the account it names (429 ``throttled`` when over the
    limit or inside a backoff period); returns the account, for ``failed``."""
    account = account_of(route, named)
    state = gateway_state(request)
    if state.public is None or not state.rate_limits:
        return account
    decision = await state.public.by_account(route, account)
    request.scope[DECISION_KEY] = tighter(decision_of(request.scope), decision)  # type: ignore[literal-required]
    if not decision.admitted:
        raise OutpostError(decision.message(), type=ErrorType.THROTTLED)
    return account


async def failed(request: Req, route: PublicRoute, account: str, error: OutpostError) -> None:
    state = gateway_state(request)
    if state.public is not None and state.rate_limits and is_failure(error.type):
        await state.public.failed(route, account)


async def call_public(
    request: Req, route: PublicRoute, named: str, op: Operation[Body, Reply], body: Body
) -> Reply:
    """A public route's call: the account's limit, the call, a refused credential counted."""
    account = await limit_account(request, route, named)
    try:
        return await gateway_state(request).backend.call(op, anonymous_context(request), body)
    except OutpostError as error:
        await failed(request, route, account, error)
        raise
