"""The one ASGI layer around Litestar: everything every HTTP exchange needs, matched route or
not, in one pass (one wrapper costs less than five; docs/benchmarks.md):

1. the request id (``X-Request-ID`` on every response, and on every log line written while
   the request is handled), the request's server span (where its trace starts, or continues
   a caller's ``traceparent``), request metrics, a last-resort 500 in the error model;
2. request limits (``bounds.py``): header size, a deadline for every request;
3. older API versions served by translation (``versions``);
4. OData key URLs routed to the by-key routes (``keys.py``);
5. ``X-RateLimit-*`` headers and Idempotency-Key records on the way out
   (``rate_limit_and_idempotency.py``).

Responses leave through ``limits_send`` → the version's translation → ``_Exchange.send``.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from typing import Any

from litestar.types import ASGIApp, Message, Receive, Scope, Send
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind, StatusCode
from prometheus_client import CollectorRegistry, Counter, Histogram

from outpost_contracts.errors import HTTP_STATUS, ErrorType
from outpost_gateway.entrypoints.bounds import headers_too_large, send_error
from outpost_gateway.entrypoints.errors import ErrorBody, encode_error, request_id_of
from outpost_gateway.entrypoints.keys import rewrite_keyed
from outpost_gateway.entrypoints.rate_limit_and_idempotency import limits_send, release_unanswered
from outpost_gateway.entrypoints.versions import translated
from outpost_kit import telemetry
from outpost_kit.logs import REQUEST_ID

_log = logging.getLogger(__name__)
# Export archive downloads: no deadline (decision 65).
_DOWNLOAD = re.compile(r"^/api/v1/exports/[^/]+/download$")
# A live stream lasts as long as the client follows it (decision 96).
_STREAM = re.compile(r"^/api/v[0-9]+/events/stream$")  # v0 is translated to v1

UNMATCHED = "<unmatched>"


class HttpMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.requests = Counter(
            "outpost_gateway_http_requests",
            "HTTP requests by method, route template and status",
            ["method", "route", "status"],
            registry=registry,
        )
        self.duration = Histogram(
            "outpost_gateway_http_request_duration_seconds",
            "HTTP request duration by method, route template and status",
            ["method", "route", "status"],
            registry=registry,
        )

        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        key = (method, route, status)
        children = self._children.get(key)
        if children is None:  # label lookups take a lock: once per label set
            labels = (method, route, str(status))
            children = (self.requests.labels(*labels), self.duration.labels(*labels))
            self._children[key] = children
        children[0].inc()
        children[1].observe(seconds)


class _Exchange:
    """What the edge knows of one response on its way out."""

    __slots__ = ("_send", "finished", "rid", "started", "status")

    def __init__(self, send: Send, rid: bytes) -> None:
        self._send = send
        self.rid = rid
        self.status = 500
        self.started = False
        self.finished = False

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.started = True
            self.status = message["status"]
            headers = [
                (k, v) for k, v in message.get("headers", []) if k.lower() != b"x-request-id"
            ]
            headers.append((b"x-request-id", self.rid))
            message = {**message, "headers": headers}  # type: ignore[typeddict-item]
        elif message["type"] == "http.response.body" and not message.get("more_body"):
            self.finished = True
        await self._send(message)


def _caller_context(scope: Scope) -> Any:
    """The caller's trace context when it sent a ``traceparent`` (W3C), else None (the
    trace starts here)."""
    for name, value in scope.get("headers", ()):
        if name == b"traceparent":
            return telemetry.extract({"traceparent": value.decode("latin-1")})
    return None


class Edge:
    def __init__(
        self,
        app: ASGIApp,
        metrics: HttpMetrics,
        *,
        max_header_bytes: int,
        timeout_seconds: float,
        max_body_bytes: int,
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.max_header_bytes = max_header_bytes
        self.timeout_seconds = timeout_seconds
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        rid = request_id_of(scope)
        exchange = _Exchange(send, rid.encode())
        method = str(scope.get("method", "GET"))
        span = telemetry.tracer(__name__).start_span(
            method, context=_caller_context(scope), kind=SpanKind.SERVER
        )
        span_token = otel_context.attach(trace.set_span_in_context(span))
        rid_token = REQUEST_ID.set(rid)
        try:
            refusal = headers_too_large(scope, self.max_header_bytes)
            if refusal is not None:
                await send_error(scope, exchange.send, ErrorType.BAD_REQUEST, refusal)
                return
            await self._serve(scope, receive, exchange)
        except Exception:
            _log.exception("unhandled error outside the exception handlers")
            if not exchange.started:
                await self._internal_error(scope, exchange.send)
        finally:
            route = str(scope.get("path_template") or UNMATCHED)
            self.metrics.observe(method, route, exchange.status, time.perf_counter() - start)
            if span.is_recording():
                span.update_name(f"{method} {route}")
                span.set_attribute("http.request.method", method)
                span.set_attribute("http.route", route)
                span.set_attribute("http.response.status_code", exchange.status)
                span.set_attribute("outpost.request_id", rid)
                if exchange.status >= 500:
                    span.set_status(StatusCode.ERROR)
            REQUEST_ID.reset(rid_token)
            otel_context.detach(span_token)
            span.end()

    async def _serve(self, scope: Scope, receive: Receive, exchange: _Exchange) -> None:
        try:
            # An archive download lasts as long as the client takes to read it.
            path = str(scope.get("path", ""))
            streaming = _DOWNLOAD.fullmatch(path) is not None or _STREAM.fullmatch(path) is not None
            async with asyncio.timeout(None if streaming else self.timeout_seconds):
                out: Send = exchange.send
                versioned = await translated(
                    scope, receive, out, max_body_bytes=self.max_body_bytes
                )
                if versioned is not None:
                    receive, out = versioned
                rewrite_keyed(scope)
                try:
                    await self.app(scope, receive, limits_send(scope, out))
                finally:
                    await release_unanswered(scope)
        except TimeoutError:
            _log.warning(
                "%s %s not answered within %.1f s",
                scope.get("method"),
                scope.get("path"),
                self.timeout_seconds,
            )
            if not exchange.started:
                await send_error(
                    scope,
                    exchange.send,
                    ErrorType.SERVICE_UNAVAILABLE,
                    f"the request was not answered within {self.timeout_seconds:g} s",
                )
            elif not exchange.finished:
                await exchange.send({"type": "http.response.body", "body": b"", "more_body": False})

    @staticmethod
    async def _internal_error(scope: Scope, send: Send) -> None:
        code = HTTP_STATUS[ErrorType.INTERNAL_SERVER_ERROR]
        body = encode_error(
            ErrorBody(
                code=code,
                type=ErrorType.INTERNAL_SERVER_ERROR.value,
                message="internal server error",
                request_id=request_id_of(scope),
            )
        )
        await send(
            {
                "type": "http.response.start",
                "status": code,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body, "more_body": False})
