"""Alerting's composition root."""

from __future__ import annotations

from datetime import timedelta
from functools import partial
from typing import Any

from outpost_alerting.adapters.projections import AlertingProjector
from outpost_alerting.app.evaluation import DEVICE_EVENTS, on_device_event
from outpost_alerting.app.handlers import Deps
from outpost_alerting.entrypoints import rpc, telemetry, timers
from outpost_alerting.settings import AlertingSettings
from outpost_contracts import alerting, devices, registry, streams
from outpost_contracts.envelope import RequestContext
from outpost_contracts.errors import NotFound
from outpost_kit import messaging
from outpost_kit.cli import migrations_dir, service_main
from outpost_kit.runtime import ServiceRuntime

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
    runtime.serve(rpc.handlers(Deps(uow=uow, scope_exists=scope_exists)))
    runtime.consume("alerting-devices", on_device_event, DEVICE_EVENTS)
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


def main() -> None:
    service_main(
        "alerting",
        settings_type=AlertingSettings,
        build=build,
        migrations=migrations_dir(__file__),
        event_types=alerting.EVENT_TYPES,
        projectors=lambda _s: (AlertingProjector(),),
    )


if __name__ == "__main__":
    main()
