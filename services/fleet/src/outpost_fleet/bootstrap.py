"""Fleet's composition root (ADR 0090): the request/reply API of config artefacts and
desired-state bindings, their read models kept in the append's transaction; the rollout
(ADR 0093): the fleet's view of devices, recompute, delivery, compliance, profile jobs."""

from __future__ import annotations

from functools import partial

from nats.aio.client import Client as NATS

from outpost_contracts import fleet, streams
from outpost_fleet.adapters import json_schema
from outpost_fleet.adapters.config_store import ConfigProjector, PgConfig
from outpost_fleet.adapters.profile_store import PgProfiles, ProfileProjector
from outpost_fleet.adapters.rollout_store import PgRollout
from outpost_fleet.adapters.targets import NatsTargets
from outpost_fleet.app import delivery, profile_application
from outpost_fleet.app.handlers import Deps
from outpost_fleet.app.profiles import ProfileDeps
from outpost_fleet.entrypoints import rollout, rpc
from outpost_fleet.settings import FleetSettings
from outpost_kit.cli import migrations_dir, service_main
from outpost_kit.db.eventstore import Projector
from outpost_kit.db.uow import UnitOfWorkFactory
from outpost_kit.runtime import Job, ServiceRuntime

PROJECTORS: tuple[Projector, ...] = (ConfigProjector(), ProfileProjector())


def deps(uow: UnitOfWorkFactory, nc: NATS, settings: FleetSettings) -> Deps:
    """The use cases' dependencies over the kit's unit of work and the broker connection
    (the integration tests make them the same way: tests/integration/fleet_testkit.py)."""
    return Deps(
        config=PgConfig.over(uow),
        targets=NatsTargets(nc, timeout=settings.rpc_timeout_seconds),
        schema_problems=json_schema.problems,
        profiles=ProfileDeps(uow=PgProfiles.over(uow), schema_problems=json_schema.problems),
        rollout=PgRollout.over(uow),
    )


def rollout_jobs(
    uow: UnitOfWorkFactory, nc: NATS, settings: FleetSettings, the_deps: Deps
) -> list[Job]:
    """The rollout's consumers and workers (the integration tests run the same ones)."""
    js = nc.jetstream()
    store = the_deps.rollout
    clock = the_deps.clock
    resolve = rollout.resolver(the_deps)
    return [
        partial(
            rollout.run_devices,
            js,
            uow,
            store,
            streams.consumer("fleet-devices"),
            settings.devices_batch,
            clock,
        ),
        partial(
            rollout.run_reports,
            js,
            uow,
            store,
            streams.consumer("fleet-reports"),
            settings.devices_batch,
        ),
        partial(
            rollout.run_recompute,
            js,
            uow,
            store,
            streams.consumer("fleet-recompute"),
            clock,
            page=settings.recompute_page,
        ),
        partial(
            delivery.run, store, rollout.deliver_via(nc), clock, rollout.delivery_options(settings)
        ),
        partial(
            profile_application.run,
            store,
            resolve,
            rollout.apply_via(nc),
            clock,
            rollout.job_options(settings),
        ),
    ]


async def build(runtime: ServiceRuntime, settings: FleetSettings) -> None:
    assert runtime.uow is not None and runtime.nc is not None
    the_deps = deps(runtime.uow, runtime.nc, settings)
    runtime.serve(rpc.handlers(the_deps))
    if settings.rollout:
        for job in rollout_jobs(runtime.uow, runtime.nc, settings, the_deps):
            runtime.background(job)


def main() -> None:
    service_main(
        "fleet",
        settings_type=FleetSettings,
        build=build,
        migrations=migrations_dir(__file__),
        event_types=fleet.EVENT_TYPES,
        projectors=lambda _s: PROJECTORS,
    )


if __name__ == "__main__":
    main()
