"""Readings' composition root."""

from __future__ import annotations

from datetime import timedelta
from functools import partial
from uuid import UUID

from outpost_contracts import annotations as annotation_contracts
from outpost_contracts import devices, reference_pairs, streams
from outpost_contracts.annotations import MAX_RETENTION_DAYS, MIN_RETENTION_DAYS
from outpost_contracts.envelope import RequestContext
from outpost_contracts.errors import NotFound
from outpost_kit import messaging, suspensions
from outpost_kit import telemetry as telemetry_context
from outpost_kit.cli import migrations_dir, service_main
from outpost_kit.runtime import ServiceRuntime
from outpost_readings.adapters.annotation_store import AnnotationsProjector, PgAnnotations
from outpost_readings.adapters.reference_pair_store import (
    PgReferencePairs,
    ReferencePairsProjector,
)
from outpost_readings.app.annotations import AnnotationDeps
from outpost_readings.app.handlers import DEVICE_EVENT_TYPES, Deps, on_device_event
from outpost_readings.app.reference_pairs import ReferencePairDeps
from outpost_readings.domain.readings import Limits
from outpost_readings.entrypoints import maintenance, retention, rpc, telemetry
from outpost_readings.settings import ReadingsSettings


async def build(runtime: ServiceRuntime, settings: ReadingsSettings) -> None:
    assert runtime.uow is not None and runtime.js is not None
    if not MIN_RETENTION_DAYS <= settings.retention_days <= MAX_RETENTION_DAYS:
        raise SystemExit(
            f"OUTPOST_READINGS_RETENTION_DAYS must be {MIN_RETENTION_DAYS}-{MAX_RETENTION_DAYS}"
        )
    limits = Limits(
        max_future=timedelta(seconds=settings.max_future_seconds),
        max_past=timedelta(days=settings.max_past_days),
    )
    nc = runtime.nc
    assert nc is not None

    async def device_exists(ctx: RequestContext, device_id: UUID) -> bool:
        try:
            await messaging.call(nc, devices.GET_DEVICE, ctx, devices.GetDevice(id=device_id))
        except NotFound:
            return False
        return True

    js = runtime.js

    async def publish(subject: str, payload: bytes, headers: dict[str, str]) -> None:
        # An HTTP batch carries its request's trace into the ingest's batch span (a link).
        await js.publish(subject, payload, headers=telemetry_context.inject(headers))

    deps = Deps(
        uow=runtime.uow,
        publish=publish,
        limits=limits,
        device_exists=device_exists,
        auto_declare_sensors=settings.auto_declare_sensors,
    )
    annotation_deps = AnnotationDeps(
        uow=PgAnnotations.over(runtime.uow),
        device_exists=device_exists,
        auto_declare_sensors=settings.auto_declare_sensors,
        retention_days=settings.retention_days,
    )
    pair_deps = ReferencePairDeps(uow=PgReferencePairs.over(runtime.uow))
    runtime.serve(rpc.handlers(deps, annotation_deps, pair_deps))
    runtime.consume("readings-devices", on_device_event, DEVICE_EVENT_TYPES)
    runtime.consume(
        "readings-organizations", suspensions.on_organization_event, suspensions.EVENT_TYPES
    )
    runtime.background(
        partial(
            maintenance.run,
            deps,
            settings.partition_days_ahead,
            settings.partition_check_seconds,
        )
    )
    runtime.background(
        partial(
            retention.run,
            runtime.uow,
            settings.retention_days,
            settings.retention_check_seconds,
            settings.retention_batch_rows,
            deps.partitions.known,
        )
    )
    # TELEMETRY, and nats-server's own store of MQTT QoS 1/2 telemetry (decision 82): each
    # MQTT reading is stored from the copy that existed when its PUBACK was sent.
    mqtt = streams.consumer("readings-mqtt")
    for spec, skip in ((streams.consumer("readings-telemetry"), mqtt), (mqtt, None)):
        runtime.background(
            partial(
                telemetry.run,
                deps,
                runtime.js,
                spec,
                settings.ingest_batch_messages,
                mqtt=skip,
            )
        )


def main() -> None:
    service_main(
        "readings",
        settings_type=ReadingsSettings,
        build=build,
        migrations=migrations_dir(__file__),
        event_types=(*annotation_contracts.EVENT_TYPES, *reference_pairs.EVENT_TYPES),
        projectors=lambda _settings: (AnnotationsProjector(), ReferencePairsProjector()),
    )


if __name__ == "__main__":
    main()
