"""Request limits at the edge (``edge.py``): total header size and a deadline for every request.

Request headers (names and values together) over ``max_header_bytes`` are refused with 400
``bad_request`` before anything else looks at them. A request that has not been answered
within ``request_timeout_seconds`` is cancelled and answered 503 ``service_unavailable``; if
its response had already started, the response is ended where it is (the status is sent).
The body size limit is Litestar's ``request_max_body_size`` (413 ``payload_too_large``).
"""

from __future__ import annotations

from litestar.types import Scope, Send

from outpost_contracts.errors import HTTP_STATUS, ErrorType
from outpost_gateway.entrypoints.errors import ErrorBody, encode_error, request_id_of
from outpost_gateway.entrypoints.rate_limit_and_idempotency import decision_of


def headers_too_large(scope: Scope, max_header_bytes: int) -> str | None:
    """The refusal's message when the request's headers exceed ``max_header_bytes``."""
    size = sum(len(k) + len(v) for k, v in scope.get("headers", []))
    if size > max_header_bytes:
        return f"request headers too large: {size} bytes, at most {max_header_bytes}"
    return None


async def send_error(scope: Scope, send: Send, type_: ErrorType, message: str) -> None:
    code = HTTP_STATUS[type_]
    body = encode_error(
        ErrorBody(code=code, type=type_.value, message=message, request_id=request_id_of(scope))
    )
    await send(
        {
            "type": "http.response.start",
            "status": code,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *rate_limit_headers(scope),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body, "more_body": False})


def rate_limit_headers(scope: Scope) -> list[tuple[bytes, bytes]]:
    """``X-RateLimit-*`` of a request already counted (its answer did not come in time)."""
    decision = decision_of(scope)
    if decision is None:
        return []
    return [(k.lower().encode(), v.encode()) for k, v in decision.headers()]
