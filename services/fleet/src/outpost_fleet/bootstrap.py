"""Fleet's composition root (ADR 0090): the request/reply API of config artefacts and
desired-state bindings, their read models kept in the append's transaction."""

from __future__ import annotations

from nats.aio.client import Client as NATS

from outpost_contracts import fleet
from outpost_fleet.adapters.config_store import ConfigProjector, PgConfig
from outpost_fleet.app.handlers import Deps
from outpost_fleet.entrypoints import rpc
from outpost_fleet.settings import FleetSettings
from outpost_kit.cli import migrations_dir, service_main
from outpost_kit.db.eventstore import Projector
from outpost_kit.db.uow import UnitOfWorkFactory
from outpost_kit.runtime import ServiceRuntime

PROJECTORS: tuple[Projector, ...] = (ConfigProjector(),)


def deps(uow: UnitOfWorkFactory, nc: NATS, settings: FleetSettings) -> Deps:
    """The use cases' dependencies over the kit's unit of work and the broker connection
    (the integration tests make them the same way: tests/integration/fleet_testkit.py)."""
    return Deps(config=PgConfig.over(uow))


async def build(runtime: ServiceRuntime, settings: FleetSettings) -> None:
    assert runtime.uow is not None and runtime.nc is not None
    runtime.serve(rpc.handlers(deps(runtime.uow, runtime.nc, settings)))


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
