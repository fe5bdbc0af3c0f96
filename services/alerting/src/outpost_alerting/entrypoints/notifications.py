"""Notifications' entry points: the request/reply handlers (channels, ``/test``, the
delivery log), the ``alerting-notifications`` consumer of alert events and the delivery
worker. ``bootstrap.py`` wires them with ``register``."""

from __future__ import annotations

import functools
import ssl
from datetime import timedelta
from typing import Any

from outpost_alerting.adapters.resolver import Resolver, SystemResolver
from outpost_alerting.adapters.secrets import SecretVault
from outpost_alerting.adapters.smtp import EmailSender, SmtpConfig
from outpost_alerting.adapters.webhook import WebhookSender
from outpost_alerting.app import notifications
from outpost_alerting.domain import deliveries, ssrf
from outpost_alerting.settings import AlertingSettings
from outpost_contracts.envelope import EventEnvelope
from outpost_contracts.rpc import Operation
from outpost_kit.db.reads import TenantReads
from outpost_kit.db.uow import UnitOfWork, UnitOfWorkFactory
from outpost_kit.responder import Handler, bind
from outpost_kit.runtime import ServiceRuntime

CONSUMER = "alerting-notifications"


def handlers(deps: notifications.NotificationDeps) -> dict[Operation[Any, Any], Handler]:
    return bind(notifications.HANDLERS, deps)


def deps_from(
    settings: AlertingSettings,
    uow: UnitOfWorkFactory,
    reads: TenantReads | None,
    resolver: Resolver | None = None,
) -> notifications.NotificationDeps:
    key = settings.secret_encryption_key
    policy = ssrf.Policy(
        allow_loopback=settings.webhook_allow_loopback,
        allow_private=settings.webhook_allow_private,
    )
    smtp_password = settings.smtp_password
    return notifications.NotificationDeps(
        uow=uow,
        reads=reads,
        vault=SecretVault(key.reveal()) if key is not None else None,
        webhooks=WebhookSender(
            resolver or SystemResolver(settings.dns_timeout_seconds),
            policy,
            settings.webhook_timeout_seconds,
        ),
        email=EmailSender(
            SmtpConfig(
                host=settings.smtp_host,
                port=settings.smtp_port,
                tls=settings.smtp_tls,
                username=settings.smtp_username,
                password=smtp_password.reveal() if smtp_password is not None else "",
                sender=settings.smtp_from,
                timeout=settings.smtp_timeout_seconds,
                tls_context=(
                    ssl.create_default_context(cafile=settings.smtp_ca_file)
                    if settings.smtp_ca_file
                    else None
                ),
            )
        ),
        budget=deliveries.Budget(
            max_attempts=settings.delivery_max_attempts,
            max_age=timedelta(seconds=settings.delivery_max_age_seconds),
            backoff_min=timedelta(seconds=settings.delivery_backoff_min_seconds),
            backoff_max=timedelta(seconds=settings.delivery_backoff_max_seconds),
        ),
        channel_concurrency=settings.delivery_channel_concurrency,
        lease=timedelta(seconds=settings.delivery_lease_seconds),
        poll_seconds=settings.delivery_poll_seconds,
        batch=settings.delivery_batch,
    )


async def on_alert_event(
    deps: notifications.NotificationDeps, uow: UnitOfWork, envelope: EventEnvelope
) -> None:
    await notifications.on_alert_event(deps, uow, envelope)


def register(
    runtime: ServiceRuntime, settings: AlertingSettings, *, deliver: bool = True
) -> notifications.NotificationDeps:
    """Serve the operations; with ``deliver``, also consume alert events and run the
    worker (``OUTPOST_ALERTING_DELIVER``)."""
    assert runtime.uow is not None
    deps = deps_from(settings, runtime.uow, runtime.reads)
    runtime.serve(handlers(deps))
    if deliver:
        runtime.consume(
            CONSUMER, functools.partial(on_alert_event, deps), notifications.ALERT_EVENTS
        )
        runtime.background(functools.partial(notifications.worker, deps))
    return deps
