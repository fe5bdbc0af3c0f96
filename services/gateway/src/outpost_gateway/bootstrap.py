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
import sys
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

import uvloop
from litestar import Litestar
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from prometheus_client import CollectorRegistry, Gauge

from outpost_gateway.adapters.artifacts import NatsArtifacts
from outpost_gateway.adapters.gateway_store import GatewayStore
from outpost_gateway.adapters.identity_follower import IdentityFollower
from outpost_gateway.adapters.nats_backend import NatsBackend
from outpost_gateway.adapters.session_tokens import JwtVerifier
from outpost_gateway.adapters.timeline_follower import TimelineFollower
from outpost_gateway.app.key_usage import KeyUsage
from outpost_gateway.app.ports import ArtifactReader, Backend, GatewayStorePort
from outpost_gateway.app.public_throttle import PublicThrottle
from outpost_gateway.app.rate_limiter import MemoryStore, RateLimiter, RateLimitMetrics
from outpost_gateway.app.readiness import Readiness
from outpost_gateway.app.timeline_stream import StreamLeases, TimelineHub
from outpost_gateway.domain.credentials import CredentialCache
from outpost_gateway.domain.downloads import DownloadSigner, parse_keys
from outpost_gateway.domain.public_throttle import (
    Backoff,
    IPNetwork,
    PublicLimits,
    parse_networks,
)
from outpost_gateway.domain.ratelimit import Limits
from outpost_gateway.entrypoints import (
    alerting,
    audit,
    commands,
    console,
    devices,
    events_stream,
    exports,
    fleet,
    fleet_status,
    identity,
    notifications,
    oauth,
    organization_rate_limits,
    packs,
    platform,
    presence,
    provisioning,
    readings,
    resources,
)
from outpost_gateway.entrypoints import annotations as annotation_routes
from outpost_gateway.entrypoints import reference_pairs as reference_pair_routes
from outpost_gateway.entrypoints.bodies import GatewayRequest
from outpost_gateway.entrypoints.edge import Edge, HttpMetrics
from outpost_gateway.entrypoints.errors import EXCEPTION_HANDLERS
from outpost_gateway.entrypoints.openapi import DocumentRenderPlugin
from outpost_gateway.entrypoints.params import provide_listing
from outpost_gateway.entrypoints.rate_limit_and_idempotency import IdempotentReplay, on_replay
from outpost_gateway.entrypoints.security import (
    GatewayState,
    ephemeral_key,
    provide_backend,
    provide_ctx,
    security_check,
)
from outpost_gateway.settings import GatewaySettings
from outpost_kit import messaging, telemetry
from outpost_kit.cli import migrate, migrations_dir
from outpost_kit.ids import now
from outpost_kit.logs import setup_logging
from outpost_kit.settings import SettingsError, load_settings

SERVICE = "gateway"
_log = logging.getLogger(__name__)


def create_app(
    settings: GatewaySettings,
    backend: Backend,
    cache: CredentialCache,
    *,
    readiness: Readiness | None = None,
    clock: Callable[[], datetime] = now,
    store: GatewayStorePort | None = None,
    epoch_clock: Callable[[], float] = time.time,
    artifacts: ArtifactReader | None = None,
    timeline: TimelineHub | None = None,
) -> Litestar:
    """The HTTP app. ``readiness`` defaults to no checks (always ready); ``main`` adds the
    NATS connection and the credential cache's catch-up. ``store`` is the shared rate-limit
    and idempotency store (the gateway schema); without one, both live in this process."""
    metrics = HttpMetrics(CollectorRegistry())
    timeline = timeline if timeline is not None else TimelineHub()
    Gauge(
        "outpost_gateway_event_streams",
        "Open /events/stream connections on this replica (decision 96)",
        registry=metrics.registry,
    ).set_function(timeline.streams)
    limiter = RateLimiter(
        store,
        limits_of(settings),
        RateLimitMetrics(metrics.registry),
        assumed_replicas=settings.ratelimit_assumed_replicas,
        store_timeout=settings.ratelimit_store_timeout_seconds,
        override_ttl=settings.ratelimit_override_ttl_seconds,
        max_lease=settings.ratelimit_max_lease,
        clock=epoch_clock,
    )
    state = GatewayState(
        backend=backend,
        cache=cache,
        readiness=readiness or Readiness(),
        metrics=metrics,
        clock=clock,
        limiter=limiter,
        idempotency=store if store is not None else MemoryStore(),
        rate_limits=settings.ratelimit_enabled,
        verify_session=JwtVerifier(cache),
        downloads=download_signer(settings),
        artifacts=artifacts,
        public_url=settings.public_url.rstrip("/"),
        public=PublicThrottle(
            limiter,
            store,
            *public_limits_of(settings),
            store_timeout=settings.ratelimit_store_timeout_seconds,
            clock=epoch_clock,
        ),
        trusted_proxies=trusted_proxies_of(settings),
        timeline=timeline,
        stream_leases=StreamLeases(limit=settings.stream_max_per_credential),
        stream_heartbeat_seconds=settings.stream_heartbeat_seconds,
    )
    app = Litestar(
        route_handlers=[
            *platform.ROUTES,
            *identity.ROUTES,
            *oauth.ROUTES,
            *resources.ROUTES,  # the resource groups (domain/resources.py)
            *devices.ROUTES,
            *provisioning.ROUTES,
            *presence.ROUTES,
            *commands.ROUTES,
            *readings.ROUTES,
            *annotation_routes.ROUTES,
            *reference_pair_routes.ROUTES,  # a pair's comparison (ADR 0098)
            *alerting.ROUTES,
            *events_stream.ROUTES,  # the timeline, live (decision 96)
            *audit.ROUTES,
            *organization_rate_limits.ROUTES,
            *notifications.ROUTES,  # notification channels and delivery logs (decision 64)
            *exports.ROUTES,  # export jobs and their downloads (decision 65)
            *fleet.ROUTES,  # config artefacts' versions (ADR 0090)
            *fleet_status.ROUTES,  # compliance and profile application (ADR 0093)
            *packs.ROUTES,  # a pack's export and the import of one (ADR 0092)
            *console.ROUTES,  # the web console at / (decision 99)
        ],
        before_request=security_check,
        request_class=GatewayRequest,  # a body nested too deeply is 400 (entrypoints/bodies.py)
        dependencies={
            "ctx": Provide(provide_ctx, sync_to_thread=False),
            "backend": Provide(provide_backend, sync_to_thread=False),
            "listing": Provide(provide_listing, sync_to_thread=False),
        },
        exception_handlers={**EXCEPTION_HANDLERS, IdempotentReplay: on_replay},
        request_max_body_size=settings.max_body_bytes,
        # Logging is the kit's JSON lines, set up once in main(); Litestar must not replace it.
        logging_config=None,
        openapi_config=OpenAPIConfig(
            title="Outpost API",
            version="1",
            description="The Outpost device-management platform's public HTTP API.",
            # Served by Litestar's OpenAPI router: the document at /api/v3/api-docs (also at
            # /api/v3 and /api/v3/openapi.json; /api/v3/{path} is Litestar's 404 page).
            path="/api/v3",
            render_plugins=[DocumentRenderPlugin(path=["/api-docs", "/openapi.json"])],
        ),
        state=None,
        debug=False,
    )
    app.state["gateway"] = state
    # The one ASGI layer (request id, metrics, request limits, versions, key URLs, rate-limit
    # headers, Idempotency-Key records): entrypoints/edge.py.
    app.asgi_handler = Edge(
        app.asgi_handler,
        metrics,
        max_header_bytes=settings.max_header_bytes,
        timeout_seconds=settings.request_timeout_seconds,
        max_body_bytes=settings.max_body_bytes,
    )
    return app


def download_signer(settings: GatewaySettings) -> DownloadSigner:
    if settings.download_signing_keys is None:
        _log.warning(
            "OUTPOST_GATEWAY_DOWNLOAD_SIGNING_KEYS is not set: export download links are signed"
            " with a random key of this process (other replicas refuse them)"
        )
        keys = [ephemeral_key()]
    else:
        keys = parse_keys(settings.download_signing_keys.reveal())
    return DownloadSigner(keys, settings.download_url_seconds)


def limits_of(settings: GatewaySettings) -> Limits:
    return Limits(
        single=settings.ratelimit_single_per_minute,
        list=settings.ratelimit_list_per_minute,
        write=settings.ratelimit_write_per_minute,
    )


def public_limits_of(settings: GatewaySettings) -> tuple[PublicLimits, Backoff]:
    return (
        PublicLimits(
            per_address=settings.public_per_address_per_minute,
            per_account=settings.public_per_account_per_minute,
        ),
        Backoff(
            free_failures=settings.public_backoff_free_failures,
            base_seconds=settings.public_backoff_base_seconds,
            max_seconds=settings.public_backoff_max_seconds,
            window_seconds=settings.public_failure_window_seconds,
        ),
    )


def trusted_proxies_of(settings: GatewaySettings) -> tuple[IPNetwork, ...]:
    try:
        return parse_networks(settings.trusted_proxies)
    except ValueError as exc:
        raise SettingsError(f"OUTPOST_GATEWAY_TRUSTED_PROXIES: {exc}") from None


PURGE_EVERY_SECONDS = 60.0


async def _purge_forever(store: GatewayStore) -> None:
    """Delete finished rate-limit windows and idempotency records past 24 h."""
    while True:
        try:
            windows, keys = await store.purge(time.time())
            if windows or keys:
                _log.info("purged %d rate-limit windows, %d idempotency keys", windows, keys)
        except Exception as exc:
            _log.warning("gateway store purge failed: %s", exc)
        await asyncio.sleep(PURGE_EVERY_SECONDS)


async def _forget_revoked_sessions_forever(cache: CredentialCache, retention: float) -> None:
    """Drop revoked sessions whose tokens have all expired, once a minute."""
    while True:
        await asyncio.sleep(PURGE_EVERY_SECONDS)
        forgotten = cache.forget_revoked_sessions(now() - timedelta(seconds=retention))
        if forgotten:
            _log.info("forgot %d revoked sessions whose tokens have expired", forgotten)


async def serve(settings: GatewaySettings) -> None:
    """Connect to NATS, start following identity events and serve HTTP until signalled."""
    from granian.constants import Interfaces
    from granian.http import HTTP1Settings
    from granian.server.embed import Server

    hub = TimelineHub()

    async def reconnected() -> None:  # announcements may have been missed meanwhile
        hub.wake_all()

    nc = await messaging.connect(
        settings.nats_url,
        name=f"{SERVICE}-{settings.instance or os.getpid()}",
        tls=settings.nats_tls(),
        process=SERVICE,
        reconnected_cb=reconnected,
    )
    store: GatewayStore | None = None
    if settings.database_url is None:
        _log.warning(
            "OUTPOST_GATEWAY_DATABASE_URL is not set: rate limits and Idempotency-Key are kept"
            " in this process only (not shared between replicas)"
        )
    else:
        store = await GatewayStore.connect(
            settings.database_url.reveal(),
            pool_size=settings.db_pool_size,
            idempotency_ttl_seconds=settings.idempotency_ttl_seconds,
            claim_timeout_seconds=settings.idempotency_claim_timeout_seconds,
        )
    cache = CredentialCache()
    follower = IdentityFollower(nc.jetstream(), cache)
    readiness = Readiness()
    readiness.add("nats", lambda: bool(nc.is_connected))
    readiness.add("credentials", lambda: follower.caught_up)
    backend = NatsBackend(nc, settings.rpc_timeout_seconds)
    app = create_app(
        settings,
        backend,
        cache,
        readiness=readiness,
        store=store,
        artifacts=NatsArtifacts(nc.jetstream()),
        timeline=hub,
    )
    timeline_follower = TimelineFollower(nc, hub)
    server = Server(
        app,
        address=settings.host,
        port=settings.port,
        interface=Interfaces.ASGI,
        backlog=settings.http_backlog,
        backpressure=settings.http_backpressure,
        http1_settings=HTTP1Settings(max_buffer_size=settings.http1_max_buffer_bytes),
    )
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, server.stop)
    follow = asyncio.create_task(follower.start())
    follow_timeline = asyncio.create_task(timeline_follower.start())
    purge = asyncio.create_task(_purge_forever(store)) if store is not None else None
    forget = asyncio.create_task(
        _forget_revoked_sessions_forever(cache, settings.revoked_session_retention_seconds)
    )
    usage: KeyUsage = app.state["gateway"].usage
    report = asyncio.create_task(usage.report_forever(backend, settings.key_usage_report_seconds))
    try:
        _log.info("gateway listening on http://%s:%d", settings.host, settings.port)
        await server.serve()
    finally:
        follow.cancel()
        follow_timeline.cancel()
        forget.cancel()
        report.cancel()
        await usage.report(backend)  # what was used since the last report
        if purge is not None:
            purge.cancel()
        await follower.stop()
        await timeline_follower.stop()
        await nc.drain()
        if store is not None:
            await store.close()


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point: ``outpost-gateway [serve]`` serves; ``outpost-gateway migrate`` creates
    the ``gateway`` schema and its roles and applies the migrations (as every service's
    ``migrate`` does). The only place the gateway reads its environment."""
    args = list(sys.argv[1:] if argv is None else argv)
    command = args[0] if args else "serve"
    if command == "migrate":
        setup_logging(SERVICE)
        asyncio.run(migrate(SERVICE, migrations_dir(__file__), dict(os.environ)))
        return
    if command != "serve":
        raise SystemExit("usage: outpost-gateway [serve|migrate]")
    settings = load_settings(GatewaySettings, SERVICE, os.environ)
    setup_logging(SERVICE, settings.log_level)
    telemetry.setup_tracing(f"outpost-{SERVICE}", os.environ)
    uvloop.run(serve(settings))


if __name__ == "__main__":
    main()
