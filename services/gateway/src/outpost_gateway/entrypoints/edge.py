"""The outermost layer of every HTTP exchange, matched route or not: the request id header,
request metrics and a last-resort 500 in the error model."""

from __future__ import annotations

import logging
import time

from litestar.types import ASGIApp, Message, Receive, Scope, Send
from prometheus_client import CollectorRegistry, Counter, Histogram

from outpost_contracts.errors import HTTP_STATUS, ErrorType
from outpost_gateway.entrypoints.errors import ErrorBody, encode_error, request_id_of

_log = logging.getLogger(__name__)

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

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        labels = (method, route, str(status))
        self.requests.labels(*labels).inc()
        self.duration.labels(*labels).observe(seconds)


class Edge:
    def __init__(self, app: ASGIApp, metrics: HttpMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = request_id_of(scope).encode()
        start = time.perf_counter()
        status = 500
        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                started = True
                status = message["status"]
                headers = [
                    (k, v) for k, v in message.get("headers", []) if k.lower() != b"x-request-id"
                ]
                headers.append((b"x-request-id", rid))
                message = {**message, "headers": headers}  # type: ignore[typeddict-item]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            _log.exception("unhandled error outside the exception handlers")
            if not started:
                await self._internal_error(scope, send_with_id)
        finally:
            route = str(scope.get("path_template") or UNMATCHED)
            method = str(scope.get("method", "GET"))
            self.metrics.observe(method, route, status, time.perf_counter() - start)

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
