"""Identity's composition root: the only place that wires settings, adapters and entry points."""

from __future__ import annotations

import sys

from outpost_contracts import identity
from outpost_identity.adapters.projections import PROJECTORS
from outpost_identity.app.handlers import Deps, issue_operator_key, operator_key_valid
from outpost_identity.entrypoints import rpc
from outpost_identity.settings import IdentitySettings
from outpost_kit.cli import migrations_dir, service_main
from outpost_kit.db.engine import create_engine
from outpost_kit.db.eventstore import EventCodec
from outpost_kit.db.uow import UnitOfWorkFactory
from outpost_kit.runtime import ServiceRuntime

EVENT_TYPES = (
    identity.OrganizationCreated,
    identity.OrganizationSuspended,
    identity.ApiKeyCreated,
    identity.ApiKeyRevoked,
)


async def build(runtime: ServiceRuntime, settings: IdentitySettings) -> None:
    assert runtime.uow is not None
    runtime.serve(rpc.handlers(Deps(uow=runtime.uow)))


def _deps(settings: IdentitySettings) -> tuple[Deps, object]:
    if settings.database_url is None:
        raise SystemExit("OUTPOST_IDENTITY_DATABASE_URL is required")
    engine = create_engine(settings.database_url.reveal(), "identity", pool_size=2)
    return Deps(uow=UnitOfWorkFactory(engine, EventCodec(EVENT_TYPES), PROJECTORS)), engine


async def bootstrap_operator(settings: IdentitySettings, args: list[str]) -> None:
    """``outpost-identity bootstrap-operator [--reuse KEY]``: print a working operator key,
    reusing ``KEY`` when it is still valid. The outbox relay of the running service
    publishes the event that lets gateways accept it."""
    deps, engine = _deps(settings)
    try:
        if len(args) == 2 and args[0] == "--reuse" and await operator_key_valid(deps, args[1]):
            print(args[1])
            return
        print(await issue_operator_key(deps, "platform operator"))
    finally:
        await engine.dispose()  # type: ignore[attr-defined]


def main() -> None:
    service_main(
        "identity",
        settings_type=IdentitySettings,
        build=build,
        migrations=migrations_dir(__file__),
        event_types=EVENT_TYPES,
        projectors=lambda _s: PROJECTORS,
        commands={"bootstrap-operator": bootstrap_operator},
    )


if __name__ == "__main__":
    main()
    sys.exit(0)
