"""Alerting's composition root: rules, streaming evaluation, alerts and the timeline
(decision 63), and notification channels and their deliveries (decision 64)."""

from __future__ import annotations

import logging
from datetime import timedelta
from functools import partial
from typing import Any

from outpost_alerting.adapters.channel_store import ChannelsProjector
from outpost_alerting.adapters.projections import AlertingProjector
from outpost_alerting.adapters.secrets import SecretVault
from outpost_alerting.adapters.store import PgAlerting
from outpost_alerting.app.evaluation import DEVICE_EVENTS, on_device_event, on_fleet_event
from outpost_alerting.app.handlers import Deps
from outpost_alerting.domain.timeline import FLEET_EVENT_TYPES
from outpost_alerting.entrypoints import notifications as notification_entrypoints
from outpost_alerting.entrypoints import rpc, telemetry, timers
from outpost_alerting.settings import AlertingSettings
from outpost_contracts import alerting, devices, notifications, registry, streams
from outpost_contracts.base import Event
from outpost_contracts.envelope import RequestContext
from outpost_contracts.errors import NotFound
from outpost_kit import messaging, suspensions
from outpost_kit.cli import migrations_dir, reseal_command, service_main
from outpost_kit.runtime import ServiceRuntime

_log = logging.getLogger(__name__)

EVENT_TYPES: tuple[type[Event], ...] = (*alerting.EVENT_TYPES, *notifications.EVENT_TYPES)
PROJECTORS = (AlertingProjector(), ChannelsProjector())

_SCOPE_LOOKUPS: dict[alerting.ScopeType, tuple[Any, Any]] = {
    alerting.ScopeType.DEVICE: (devices.GET_DEVICE, devices.GetDevice),
    alerting.ScopeType.GROUP: (registry.GET_GROUP, registry.Get),
    alerting.ScopeType.SITE: (registry.GET_SITE, registry.Get),
}


async def build(runtime: ServiceRuntime, settings: AlertingSettings) -> None:
    assert runtime.uow is not None and runtime.js is not None and runtime.nc is not None
    nc = runtime.nc

    async def scope_exists(ctx: RequestContext, scope: alerting.RuleScope) -> bool:
        operation, request = _SCOPE_LOOKUPS[scope.type]
        assert scope.id is not None  # checked with the rule
        try:
            await messaging.call(nc, operation, ctx, request(id=scope.id))
        except NotFound:
            return False
        return True

    uow = runtime.uow
    runtime.serve(rpc.handlers(Deps(uow=PgAlerting.over(uow), scope_exists=scope_exists)))
    # Every replica: evaluation skips a suspended organization, the delivery worker holds its
    # deliveries (decision 76).
    runtime.consume(
        "alerting-organizations", suspensions.on_organization_event, suspensions.EVENT_TYPES
    )
    if settings.evaluate:
        runtime.consume("alerting-devices", on_device_event, DEVICE_EVENTS)
        runtime.consume("alerting-fleet", on_fleet_event, FLEET_EVENT_TYPES)
        runtime.background(
            partial(
                telemetry.run,
                uow,
                runtime.nc,
                streams.consumer("alerting-telemetry"),
                settings.evaluation_batch_messages,
            )
        )
        runtime.background(
            partial(
                timers.run,
                uow,
                settings.timer_check_seconds,
                timedelta(seconds=settings.timer_lease_seconds),
                settings.timer_batch,
            )
        )
    if settings.secret_encryption_key is None:
        _log.warning(
            "OUTPOST_ALERTING_SECRET_ENCRYPTION_KEY is not set: webhook channels are disabled"
        )
    notification_entrypoints.register(runtime, settings, deliver=settings.deliver)
    _log.info(
        "alerting replica: evaluate=%s deliver=%s (request/reply on every replica)",
        settings.evaluate,
        settings.deliver,
    )


# ``outpost-alerting rotate-secret-keys`` (docs/runbook.md).
rotate_secret_keys = reseal_command(
    "outpost-alerting rotate-secret-keys",
    AlertingSettings,
    key_variable="OUTPOST_ALERTING_SECRET_ENCRYPTION_KEY",
    keys=lambda settings: settings.secret_encryption_key,
    rotator=lambda keys: SecretVault(keys).rotate,
    table="alerting.channel_secrets",
    key_columns=("org_id", "channel_id"),
    column="sealed",
    done="re-sealed {count} webhook secrets under the first key",
)


def main() -> None:
    service_main(
        "alerting",
        settings_type=AlertingSettings,
        build=build,
        migrations=migrations_dir(__file__),
        event_types=EVENT_TYPES,
        projectors=lambda _s: PROJECTORS,
        commands={"rotate-secret-keys": rotate_secret_keys},
    )


if __name__ == "__main__":
    main()
