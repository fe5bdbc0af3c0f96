"""Request limits at the edge: total header size and a deadline for every request.

Request headers (names and values together) over ``max_header_bytes`` are refused with 400
``bad_request`` before anything else looks at them. A request that has not been answered
within ``request_timeout_seconds`` is cancelled and answered 503 ``service_unavailable``; if
its response had already started, the response is ended where it is (the status is sent).
The body size limit is Litestar's ``request_max_body_size`` (413 ``payload_too_large``).
"""

from __future__ import annotations

import asyncio
import logging

from litestar.types import ASGIApp, Message, Receive, Scope, Send

from outpost_contracts.errors import HTTP_STATUS, ErrorType
from outpost_gateway.entrypoints.errors import ErrorBody, encode_error, request_id_of
from outpost_gateway.entrypoints.limits import decision_of

_log = logging.getLogger(__name__)


class Bounds:
    def __init__(self, app: ASGIApp, *, max_header_bytes: int, timeout_seconds: float) -> None:
        self.app = app
        self.max_header_bytes = max_header_bytes
        self.timeout_seconds = timeout_seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        size = sum(len(k) + len(v) for k, v in scope.get("headers", []))
        if size > self.max_header_bytes:
            await send_error(
                scope,
                send,
                ErrorType.BAD_REQUEST,
                f"request headers too large: {size} bytes, at most {self.max_header_bytes}",
            )
            return
        started = finished = False

        async def watched(message: Message) -> None:
            nonlocal started, finished
            if message["type"] == "http.response.start":
                started = True
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                finished = True
            await send(message)

        try:
            async with asyncio.timeout(self.timeout_seconds):
                await self.app(scope, receive, watched)
        except TimeoutError:
            _log.warning(
                "%s %s not answered within %.1f s",
                scope.get("method"),
                scope.get("path"),
                self.timeout_seconds,
            )
            if not started:
                await send_error(
                    scope,
                    send,
                    ErrorType.SERVICE_UNAVAILABLE,
                    f"the request was not answered within {self.timeout_seconds:g} s",
                )
            elif not finished:
                await send({"type": "http.response.body", "body": b"", "more_body": False})


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
