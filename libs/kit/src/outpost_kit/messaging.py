"""NATS plumbing: connections, request/reply with timeouts, stream and consumer application."""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Iterable
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit

import nats
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeout
from nats.js.api import (
    ConsumerConfig,
    DeliverPolicy,
    RetentionPolicy,
    StorageType,
    StreamConfig,
    StreamSource,
)
from nats.js.client import JetStreamContext
from nats.js.errors import NotFoundError
from opentelemetry.trace import SpanKind

from outpost_contracts import access
from outpost_contracts.envelope import RequestContext
from outpost_contracts.errors import ServiceUnavailable
from outpost_contracts.rpc import Operation
from outpost_contracts.streams import ConsumerSpec, StreamSpec
from outpost_kit import telemetry

_log = logging.getLogger(__name__)
Req = TypeVar("Req")
Rep = TypeVar("Rep")

MSG_ID = "Nats-Msg-Id"
REQUEST_ID = "Outpost-Request-Id"


def client_tls(ca_file: str = "", cert_file: str = "", key_file: str = "") -> ssl.SSLContext | None:
    """A TLS context trusting ``ca_file`` (the broker's CA) and presenting ``cert_file``, or
    None when no CA is given (a plain connection, as in the integration tests)."""
    if not ca_file:
        return None
    context = ssl.create_default_context(cafile=ca_file)
    if cert_file:
        context.load_cert_chain(cert_file, key_file or None)
    return context


def url_credentials(url: str) -> tuple[str | None, str | None]:
    """The user and password of ``scheme://user:password@host:port`` (decoded), or None."""
    parsed = urlsplit(url)
    user = unquote(parsed.username) if parsed.username is not None else None
    password = unquote(parsed.password) if parsed.password is not None else None
    return user, password


async def connect(
    url: str,
    name: str,
    *,
    tls: ssl.SSLContext | None = None,
    process: str | None = None,
    **options: Any,
) -> NATS:
    """A connection that reconnects forever: a broker restart is an outage, not a crash.

    Credentials travel in the URL (``tls://user:password@host:port``); they are also given
    as options, so that the cluster's other nodes, which the client learns from the server
    it reached (without credentials), accept it when it reconnects to them. ``tls`` is the
    context from ``client_tls`` when the broker requires TLS. ``process`` (a service, or
    the gateway) gives the connection that process's inbox prefix, the only inboxes its
    broker user may read (``outpost_contracts.access``, decision 74).
    """
    if tls is not None:
        options["tls"] = tls
    if process is not None:
        options.setdefault("inbox_prefix", access.inbox_prefix(process))
    user, password = url_credentials(url)
    if user is not None and "user" not in options and "token" not in options:
        if password is None:
            options["token"] = user
        else:
            options["user"], options["password"] = user, password
    nc = await nats.connect(
        url,
        name=name,
        max_reconnect_attempts=-1,
        reconnect_time_wait=0.5,
        **options,
    )
    # ``call`` refuses an operation the process does not declare, before the broker would.
    nc._outpost_process = process  # type: ignore[attr-defined]
    return nc


class Requests:
    """Request/reply over one connection: every reply comes back on one wildcard inbox
    subscription and is matched to its waiting request by a counter token. The same
    protocol as ``nc.request``, without its per-request random token, ``wait_for`` and
    closures (the gateway sends one request per HTTP request; docs/benchmarks.md)."""

    def __init__(self, nc: NATS) -> None:
        self.nc = nc
        self._prefix = ""
        self._next = 0
        self._waiting: dict[str, asyncio.Future[Msg]] = {}

    async def _subscribe(self) -> None:
        prefix = self.nc.new_inbox() + "."
        await self.nc.subscribe(prefix + "*", cb=self._on_reply)
        self._prefix = prefix

    async def _on_reply(self, msg: Msg) -> None:
        waiter = self._waiting.pop(msg.subject[len(self._prefix) :], None)
        if waiter is not None and not waiter.done():
            waiter.set_result(msg)

    async def request(
        self,
        subject: str,
        payload: bytes,
        timeout: float,  # noqa: ASYNC109 - the request's own timeout, passed to NATS
        headers: dict[str, str] | None = None,
    ) -> Msg:
        """The reply; ``NatsTimeout`` without one in time, ``NoRespondersError`` when nobody
        listens on ``subject``."""
        if not self._prefix:
            await self._subscribe()
        self._next += 1
        token = str(self._next)
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[Msg] = loop.create_future()
        self._waiting[token] = waiter
        expiry = loop.call_later(timeout, _expire, waiter)
        try:
            await self.nc.publish(subject, payload, reply=self._prefix + token, headers=headers)
            msg = await waiter
        finally:
            expiry.cancel()
            self._waiting.pop(token, None)
        if msg.headers and msg.headers.get("Status") == "503" and not msg.data:
            raise NoRespondersError
        return msg


class UndeclaredCall(RuntimeError):
    """A process called an operation its declarations (``outpost_contracts.access``) do not
    name: a programming error, which the broker would refuse anyway."""


def _expire(waiter: asyncio.Future[Msg]) -> None:
    if not waiter.done():
        waiter.set_exception(NatsTimeout())


def requests_of(nc: NATS) -> Requests:
    """The ``Requests`` of a connection: one per connection, made on first use and kept on
    the connection object itself (so it goes when the connection goes)."""
    found: Requests | None = getattr(nc, "_outpost_requests", None)
    if found is None:
        found = Requests(nc)
        nc._outpost_requests = found  # type: ignore[attr-defined]
    return found


async def call(
    nc: NATS,
    op: Operation[Req, Rep],
    ctx: RequestContext,
    body: Req,
    *,
    timeout: float = 5.0,  # noqa: ASYNC109 - the request's own timeout, passed to NATS
) -> Rep:
    """Send ``body`` to the service that owns ``op`` and return its reply.

    The service's typed error is raised as ``OutpostError``; no answer in time (or nobody
    listening) is ``ServiceUnavailable`` (HTTP 503). The request id travels in the envelope
    (``ctx``); the trace context travels in a ``traceparent`` header when spans are
    recorded in this process (telemetry.py), and the request has no headers otherwise.
    On a connection made for a process (``connect(process=…)``), an operation the process
    does not declare in ``outpost_contracts.access`` raises ``UndeclaredCall`` at once: its
    broker user may not publish it (decision 74).
    """
    process = getattr(nc, "_outpost_process", None)
    if process is not None and not access.may_call(process, op):
        raise UndeclaredCall(
            f"{process} calls {op.subject} without declaring it in outpost_contracts.access"
        )
    with telemetry.tracer(__name__).start_as_current_span(
        f"rpc {op.service}.{op.name}", kind=SpanKind.CLIENT
    ) as span:
        # Recorded, or not sampled while spans are recorded: the callee follows the decision.
        headers = telemetry.inject() if span.is_recording() or telemetry.listening() else None
        try:
            msg = await requests_of(nc).request(
                op.subject, op.encode_request(ctx, body), timeout, headers
            )
        except (NatsTimeout, NoRespondersError) as exc:
            raise ServiceUnavailable(f"the {op.service} service did not answer in time") from exc
        if msg.headers and msg.headers.get("Status") == "503":
            raise ServiceUnavailable(f"the {op.service} service is not available")
        return op.decode_reply(msg.data)


_RETENTION = {
    "limits": RetentionPolicy.LIMITS,
    "workqueue": RetentionPolicy.WORK_QUEUE,
    "interest": RetentionPolicy.INTEREST,
}


def stream_config(spec: StreamSpec, replicas: int = 1) -> StreamConfig:
    return StreamConfig(
        num_replicas=replicas,
        name=spec.name,
        subjects=list(spec.subjects) or None,
        sources=[StreamSource(name=name) for name in spec.sources] or None,
        description=spec.description or None,
        retention=_RETENTION[spec.retention],
        storage=StorageType.FILE if spec.storage == "file" else StorageType.MEMORY,
        max_age=spec.max_age_seconds or None,
        max_bytes=spec.max_bytes,
        duplicate_window=spec.duplicate_window_seconds,
    )


def consumer_config(spec: ConsumerSpec) -> ConsumerConfig:
    filters = list(spec.filter_subjects)
    return ConsumerConfig(
        durable_name=spec.name if spec.durable else None,
        description=spec.description or None,
        deliver_policy=DeliverPolicy.ALL if spec.deliver_policy == "all" else DeliverPolicy.NEW,
        ack_wait=spec.ack_wait_seconds,
        max_deliver=spec.max_deliver,
        max_ack_pending=spec.max_ack_pending,
        filter_subject=filters[0] if len(filters) == 1 else None,
        filter_subjects=filters if len(filters) > 1 else None,
    )


async def apply_streams(
    js: JetStreamContext,
    streams: Iterable[StreamSpec],
    consumers: Iterable[ConsumerSpec] = (),
    *,
    replicas: int = 1,
) -> None:
    """Create or update every stream and durable consumer: idempotent, safe at every start.
    ``replicas`` is each stream's (durable consumers inherit it).

    Only the stream administrator's user may (``outpost-admin streams apply``, the dev
    stack, the migrations job; decision 74): services wait for theirs (``await_streams``)."""
    for spec in streams:
        config = stream_config(spec, replicas)
        try:
            await js.stream_info(spec.name)
        except NotFoundError:
            await js.add_stream(config)
            _log.info("stream %s created", spec.name)
        else:
            await js.update_stream(config)
    for cspec in consumers:
        if not cspec.durable:
            continue  # ephemeral consumers are made by each replica when it subscribes
        await js.add_consumer(cspec.stream, consumer_config(cspec))


async def await_streams(
    js: JetStreamContext,
    streams: Iterable[StreamSpec],
    consumers: Iterable[ConsumerSpec] = (),
    *,
    retry_seconds: float = 1.0,
) -> None:
    """Return once every stream and durable consumer given exists: a service's broker user
    may not create them (decision 74), the stream administrator does, maybe after the
    service started (Kubernetes starts the migrations Job and the services together)."""
    missing: list[str] = []
    waited = 0
    while True:
        missing.clear()
        for spec in streams:
            try:
                await js.stream_info(spec.name)
            except NotFoundError:
                missing.append(f"stream {spec.name}")
        for cspec in consumers:
            if not cspec.durable:
                continue
            try:
                await js.consumer_info(cspec.stream, cspec.name)
            except NotFoundError:
                missing.append(f"consumer {cspec.stream}/{cspec.name}")
        if not missing:
            return
        if waited % 10 == 0:
            _log.warning(
                "waiting for %s (applied by `outpost-admin streams apply`)", ", ".join(missing)
            )
        waited += 1
        await asyncio.sleep(retry_seconds)
