"""Request/reply responders: a service's handler table served on NATS.

Raw nats-py queue subscriptions, not FastStream: on this hardware a FastStream responder
answered 621 sequential requests/s against 2,092/s for nats-py (ADR 0001), and this
is the path every HTTP request takes. Each request runs in its own task (a nats-py
subscription calls its callback serially) under a concurrency bound.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import msgspec
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from opentelemetry.trace import SpanKind
from prometheus_client import Counter, Histogram

from outpost_contracts.envelope import RequestContext
from outpost_contracts.errors import (
    ErrorType,
    FieldError,
    OutpostError,
    ServiceUnavailable,
    ValidationFailed,
)
from outpost_contracts.rpc import Operation
from outpost_kit import telemetry
from outpost_kit.db.errors import database_unavailable
from outpost_kit.db.eventstore import ConcurrencyConflict
from outpost_kit.logs import REQUEST_ID

_log = logging.getLogger(__name__)

CONFLICT_RETRIES = Counter(
    "outpost_rpc_conflict_retries_total",
    "Requests run again after another request changed the same aggregate first",
)
RPC_SECONDS = Histogram(
    "outpost_rpc_server_seconds", "Request/reply handling time", ["operation", "outcome"]
)

Handler = Callable[[RequestContext, Any], Awaitable[Any]]

# JSON escapes U+0000 as \u0000; Postgres can store it in neither text nor jsonb. An odd
# number of backslashes before "u0000" is the escape (an even number is a literal backslash).
_NUL = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")


def refuse_nul(data: bytes) -> None:
    """Text with the NUL character is bad input (400), not a database error (500)."""
    if b"u0000" in data and _NUL.search(data):
        raise ValidationFailed(
            "text may not contain the NUL character (U+0000)",
            fields=[FieldError(name="body", message="contains U+0000")],
        )


def bind(
    table: Mapping[Operation[Any, Any], Callable[..., Awaitable[Any]]], deps: Any
) -> dict[Operation[Any, Any], Handler]:
    """A service's handler table (``fn(deps, ctx, body)``) bound to its dependencies."""
    return {op: functools.partial(fn, deps) for op, fn in table.items()}


# A handler is one transaction: when another request changed the same aggregate between its
# load and its append, running it again from the start is what the caller would do.
CONFLICT_ATTEMPTS = 3


async def _call(handler: Handler, ctx: Any, body: Any) -> Any:
    """The handler, run again on a concurrency conflict (another request appended to the
    same stream first) unless the caller named the version it expects (``If-Match``:
    ``expected_version``): then the conflict is the caller's to see (409, or 412 when it
    retries)."""
    for attempt in range(1, CONFLICT_ATTEMPTS + 1):
        try:
            return await handler(ctx, body)
        except ConcurrencyConflict:
            if attempt == CONFLICT_ATTEMPTS or getattr(body, "expected_version", None) is not None:
                raise
            CONFLICT_RETRIES.inc()
    raise AssertionError("unreachable")


def validation_failure(exc: msgspec.ValidationError) -> ValidationFailed:
    """msgspec's message (``Expected `int`, got `str` - at `$.body.limit` ``) as docs/api.md's
    error."""
    text = str(exc)
    path = text.rsplit(" - at `", 1)[1].rstrip("`") if " - at `" in text else "$"
    name = path.removeprefix("$.body").removeprefix("$").lstrip(".") or "body"
    message = text.rsplit(" - at `", 1)[0]
    return ValidationFailed(message, fields=[FieldError(name=name, message=message)])


class Responder:
    def __init__(
        self,
        nc: NATS,
        service: str,
        handlers: Mapping[Operation[Any, Any], Handler],
        *,
        max_concurrency: int = 256,
    ) -> None:
        self._nc = nc
        self.service = service
        self._handlers = handlers
        self._limit = asyncio.Semaphore(max_concurrency)
        self._subs: list[Subscription] = []
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        for op, handler in self._handlers.items():
            if op.service != self.service:
                raise ValueError(f"{op.name} belongs to {op.service}, not {self.service}")
            self._subs.append(
                await self._nc.subscribe(
                    op.subject, queue=self.service, cb=self._callback(op, handler)
                )
            )

    async def stop(self) -> None:
        for sub in self._subs:
            await sub.unsubscribe()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=10)

    def _callback(
        self, op: Operation[Any, Any], handler: Handler
    ) -> Callable[[Msg], Awaitable[None]]:
        async def callback(msg: Msg) -> None:
            await self._limit.acquire()
            task = asyncio.create_task(self._serve(op, handler, msg))
            self._tasks.add(task)
            task.add_done_callback(self._done)

        return callback

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._limit.release()

    async def _serve(self, op: Operation[Any, Any], handler: Handler, msg: Msg) -> None:
        started = time.perf_counter()
        outcome = "ok"
        with telemetry.tracer(__name__).start_as_current_span(
            f"handle {op.service}.{op.name}",
            kind=SpanKind.SERVER,
            context=telemetry.extract(msg.headers) if msg.headers else None,
        ) as span:
            try:
                refuse_nul(msg.data)
                try:
                    request = op.decode_request(msg.data)
                except msgspec.ValidationError as exc:
                    raise validation_failure(exc) from exc
                # Each request runs in a task of its own: the id stays with this request's
                # log lines and goes with the task.
                REQUEST_ID.set(request.ctx.request_id)
                if span.is_recording():
                    span.set_attribute("outpost.request_id", request.ctx.request_id)
                    span.set_attribute("outpost.org_id", str(request.ctx.org_id))
                result = await _call(handler, request.ctx, request.body)
                reply = op.encode_result(result)
            except OutpostError as exc:
                outcome = exc.type.value
                reply = op.encode_error(exc)
            except Exception as exc:
                if database_unavailable(exc):  # an outage, not a bug: 503, retry later
                    outcome = ErrorType.SERVICE_UNAVAILABLE.value
                    _log.warning("%s.%s: database unavailable: %r", op.service, op.name, exc)
                    reply = op.encode_error(
                        ServiceUnavailable(f"the {op.service} database is unavailable; retry")
                    )
                else:
                    outcome = "internal_server_error"
                    _log.exception("%s.%s failed", op.service, op.name)
                    reply = op.encode_error(
                        OutpostError("internal error", type=ErrorType.INTERNAL_SERVER_ERROR)
                    )
        RPC_SECONDS.labels(f"{op.service}.{op.name}", outcome).observe(
            time.perf_counter() - started
        )
        if msg.reply:
            try:
                await msg.respond(reply)
            except Exception as exc:
                _log.warning("%s.%s: could not reply: %s", op.service, op.name, exc)
