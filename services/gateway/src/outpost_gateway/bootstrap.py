"""Composition root: ``create_app`` wires the HTTP app; ``main`` connects and serves.

The environment is read only in ``main``, never at import time. ``main`` serves with
granian's embedded server in its own event loop, so the NATS connection, the identity follower
and the HTTP server share one loop.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Callable
from datetime import datetime

from litestar import Litestar
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin
from prometheus_client import CollectorRegistry

from outpost_gateway.adapters.identity_follower import IdentityFollower
from outpost_gateway.adapters.nats_backend import NatsBackend
from outpost_gateway.adapters.session_tokens import JwtVerifier
from outpost_gateway.app.ports import Backend
from outpost_gateway.app.readiness import Readiness
from outpost_gateway.domain.credentials import CredentialCache
from outpost_gateway.entrypoints import devices, identity, platform, readings
from outpost_gateway.entrypoints.edge import Edge, HttpMetrics
from outpost_gateway.entrypoints.errors import EXCEPTION_HANDLERS
from outpost_gateway.entrypoints.security import (
    GatewayState,
    provide_backend,
    provide_ctx,
    security_guard,
)
from outpost_gateway.settings import GatewaySettings
from outpost_kit import messaging, telemetry
from outpost_kit.ids import now
from outpost_kit.settings import load_settings

SERVICE = "gateway"
_log = logging.getLogger(__name__)


def create_app(
    settings: GatewaySettings,
    backend: Backend,
    cache: CredentialCache,
    *,
    readiness: Readiness | None = None,
    clock: Callable[[], datetime] = now,
) -> Litestar:
    """The HTTP app. ``readiness`` defaults to no checks (always ready); ``main`` adds the
    NATS connection and the credential cache's catch-up."""
    metrics = HttpMetrics(CollectorRegistry())
    state = GatewayState(
        backend=backend,
        cache=cache,
        readiness=readiness or Readiness(),
        metrics=metrics,
        clock=clock,
        verify_session=JwtVerifier(cache),
    )
    app = Litestar(
        route_handlers=[*platform.ROUTES, *identity.ROUTES, *devices.ROUTES, *readings.ROUTES],
        guards=[security_guard],
        dependencies={
            "ctx": Provide(provide_ctx, sync_to_thread=False),
            "backend": Provide(provide_backend, sync_to_thread=False),
        },
        exception_handlers=EXCEPTION_HANDLERS,
        request_max_body_size=settings.max_body_bytes,
        openapi_config=OpenAPIConfig(
            title="Outpost API",
            version="1",
            description="The Outpost device-management platform's public HTTP API.",
            # Served by Litestar's OpenAPI router: the document at /api/v3/api-docs (also at
            # /api/v3 and /api/v3/openapi.json; /api/v3/{path} is Litestar's 404 page).
            path="/api/v3",
            render_plugins=[JsonRenderPlugin(path=["/api-docs", "/openapi.json"])],
        ),
        state=None,
        debug=False,
    )
    app.state["gateway"] = state
    app.asgi_handler = Edge(app.asgi_handler, metrics)
    return app


async def serve(settings: GatewaySettings) -> None:
    """Connect to NATS, start following identity events and serve HTTP until signalled."""
    from granian.constants import Interfaces
    from granian.server.embed import Server

    nc = await messaging.connect(
        settings.nats_url, name=f"{SERVICE}-{settings.instance or os.getpid()}"
    )
    cache = CredentialCache()
    follower = IdentityFollower(nc.jetstream(), cache)
    readiness = Readiness()
    readiness.add("nats", lambda: bool(nc.is_connected))
    readiness.add("credentials", lambda: follower.caught_up)
    app = create_app(
        settings, NatsBackend(nc, settings.rpc_timeout_seconds), cache, readiness=readiness
    )
    server = Server(app, address=settings.host, port=settings.port, interface=Interfaces.ASGI)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, server.stop)
    follow = asyncio.create_task(follower.start())
    try:
        _log.info("gateway listening on http://%s:%d", settings.host, settings.port)
        await server.serve()
    finally:
        follow.cancel()
        await follower.stop()
        await nc.drain()


def main() -> None:
    """Entry point (``outpost-gateway``): the only place the gateway reads its environment."""
    settings = load_settings(GatewaySettings, SERVICE, os.environ)
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    telemetry.setup_tracing(SERVICE, os.environ)
    asyncio.run(serve(settings))


if __name__ == "__main__":
    main()
