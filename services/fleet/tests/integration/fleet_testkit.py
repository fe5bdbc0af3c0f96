"""What the fleet integration tests share: the fleet schema migrated on the test cluster with
its own role, fleet's real handlers served over the session's nats-server (the responder
``bootstrap`` builds, on a connection of the ``fleet`` process), the outbox relay publishing
to the FLEET stream, and a stand-in of the devices service answering what fleet asks of it
(``device_config``) over real request/reply, recording every call.

    async with fleet_env(postgres_dsn, nats_url) as env:
        view = await env.call(fleet.SOME_OPERATION, org, body)

The stand-in also answers the lookups of a binding's target (``GetDevice``, ``GetSite``,
``GetGroup``) from ``env.devices.known``: add an organization's ids there.

``env.call`` goes through NATS exactly as the gateway's call does; ``env.deps`` is what the
handlers are given (for a test that calls a use case directly); ``env.rows`` reads the
schema as the migrations' owner would not (through the service's role, in a tenant)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import secrets
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from nats.aio.client import Client as NATS
from nats.js.client import JetStreamContext

from outpost_contracts import audit as audit_contract
from outpost_contracts import device_config, devices, fleet, registry, streams
from outpost_contracts.envelope import Principal, PrincipalKind, RequestContext
from outpost_contracts.errors import NotFound
from outpost_contracts.rpc import Operation
from outpost_fleet import bootstrap
from outpost_fleet.app.handlers import Deps
from outpost_fleet.entrypoints import rpc
from outpost_fleet.settings import FleetSettings
from outpost_kit import audit, ids
from outpost_kit.cli import migrations_dir
from outpost_kit.db.engine import create_engine
from outpost_kit.db.eventstore import EventCodec
from outpost_kit.db.migrate import upgrade
from outpost_kit.db.outbox import OutboxRelay
from outpost_kit.db.provision import provision_service
from outpost_kit.db.uow import UnitOfWorkFactory
from outpost_kit.messaging import apply_streams, call, connect
from outpost_kit.responder import Responder


def ctx_of(org: uuid.UUID, scopes: tuple[str, ...] = ("*",)) -> RequestContext:
    principal = Principal(kind=PrincipalKind.API_KEY, id=ids.new_id(), org_id=org, scopes=scopes)
    return RequestContext(request_id=secrets.token_hex(16), org_id=org, principal=principal)


@dataclass
class Devices:
    """The devices service as fleet sees it: ``ApplyDeviceProfile`` and
    ``SetFleetDesiredStates`` recorded and answered as if every device took them (set
    ``apply`` / ``set_states`` to answer otherwise)."""

    known: dict[uuid.UUID, set[uuid.UUID]] = field(default_factory=dict)  # org → ids
    applied: list[tuple[uuid.UUID, device_config.ApplyDeviceProfile]] = field(default_factory=list)
    states: list[tuple[uuid.UUID, device_config.SetFleetDesiredStates]] = field(
        default_factory=list
    )
    apply: Callable[[RequestContext, device_config.ApplyDeviceProfile], Any] | None = None
    set_states: Callable[[RequestContext, device_config.SetFleetDesiredStates], Any] | None = None

    def add(self, org: uuid.UUID) -> uuid.UUID:
        """A new device, site or group id of ``org`` (the lookups do not tell them apart)."""
        new = ids.new_id()
        self.known.setdefault(org, set()).add(new)
        return new

    def _known(self, c: RequestContext, id: uuid.UUID, noun: str) -> None:
        if id not in self.known.get(c.org_id, set()):
            raise NotFound(f"no such {noun}")

    async def _get_device(self, c: RequestContext, q: devices.GetDevice) -> devices.DeviceView:
        self._known(c, q.id, "device")
        at = ids.now()
        return devices.DeviceView(
            id=q.id,
            name=str(q.id),
            status=devices.DeviceStatus.ACTIVE,
            created_at=at,
            updated_at=at,
            version=1,
        )

    async def _get_site(self, c: RequestContext, q: registry.Get) -> registry.SiteView:
        self._known(c, q.id, "site")
        at = ids.now()
        return registry.SiteView(id=q.id, name="s", created_at=at, updated_at=at, version=1)

    async def _get_group(self, c: RequestContext, q: registry.Get) -> registry.DeviceGroupView:
        self._known(c, q.id, "device group")
        at = ids.now()
        return registry.DeviceGroupView(id=q.id, name="g", created_at=at, updated_at=at, version=1)

    async def _apply(
        self, c: RequestContext, q: device_config.ApplyDeviceProfile
    ) -> device_config.ApplyDeviceProfileResult:
        self.applied.append((c.org_id, q))
        if self.apply is not None:
            return await self.apply(c, q)  # type: ignore[no-any-return]
        return device_config.ApplyDeviceProfileResult(applied=list(q.device_ids), missing=[])

    async def _set_states(
        self, c: RequestContext, q: device_config.SetFleetDesiredStates
    ) -> device_config.SetFleetDesiredStatesResult:
        self.states.append((c.org_id, q))
        if self.set_states is not None:
            return await self.set_states(c, q)  # type: ignore[no-any-return]
        return device_config.SetFleetDesiredStatesResult(
            changed=[i.device_id for i in q.items], unchanged=[], missing=[], too_large=[]
        )


@dataclass
class Env:
    dsn: str
    uow: UnitOfWorkFactory
    nc: NATS
    js: JetStreamContext
    deps: Deps
    devices: Devices

    async def call(
        self,
        op: Operation[Any, Any],
        org: uuid.UUID,
        body: Any,
        *,
        scopes: tuple[str, ...] = ("*",),
    ) -> Any:
        """``op`` through NATS, as the gateway calls it (typed errors raised as such)."""
        return await call(self.nc, op, ctx_of(org, scopes), body, timeout=10.0)

    async def rows(self, org: uuid.UUID | None, sql: str, **params: Any) -> list[Any]:
        async with self.uow(org) as u:
            return list(await u.execute(sql, params))


@contextlib.asynccontextmanager
async def fleet_env(
    postgres_dsn: str, nats_url: str, settings: FleetSettings | None = None
) -> AsyncIterator[Env]:
    dsn = await provision_service(postgres_dsn, "fleet", secrets.token_urlsafe(16))
    await upgrade(postgres_dsn, "fleet", migrations_dir(bootstrap.__file__))
    engine = create_engine(dsn, "fleet", pool_size=8)
    uow = UnitOfWorkFactory(engine, EventCodec(fleet.EVENT_TYPES), bootstrap.PROJECTORS)
    tests_nc = await connect(nats_url, "fleet-tests")  # the caller's (the gateway's) side
    fleet_nc = await connect(nats_url, "fleet", process="fleet")
    js = tests_nc.jetstream()
    # DEVICES too: fleet's consumers of it (ADR 0093) are made with fleet's own.
    await apply_streams(
        js,
        (streams.stream("DEVICES"), *streams.streams_of("fleet")),
        streams.consumers_of("fleet"),
    )
    deps = bootstrap.deps(uow, fleet_nc, settings or FleetSettings())
    stand_in = Devices()
    responders = [
        Responder(
            fleet_nc,
            "fleet",
            {
                **rpc.handlers(deps),
                # What the kit's runtime serves for every service with a database.
                audit_contract.list_audit_log("fleet"): functools.partial(
                    audit.list_audit_log, uow, "fleet"
                ),
            },
        ),
        Responder(
            tests_nc,
            "devices",
            {
                device_config.APPLY_DEVICE_PROFILE: stand_in._apply,
                device_config.SET_FLEET_DESIRED_STATES: stand_in._set_states,
                devices.GET_DEVICE: stand_in._get_device,
                registry.GET_SITE: stand_in._get_site,
                registry.GET_GROUP: stand_in._get_group,
            },
        ),
    ]
    for r in responders:
        await r.start()
    # The subscriptions reach the server before the first request on the other connection
    # (otherwise "no responders" at once, now and then).
    await fleet_nc.flush()
    await tests_nc.flush()
    stop = asyncio.Event()
    relay = asyncio.create_task(OutboxRelay(dsn, "fleet", js, idle_wait=0.1).run(stop))
    try:
        yield Env(dsn, uow, tests_nc, js, deps, stand_in)
    finally:
        stop.set()
        await asyncio.wait_for(relay, 10)
        for r in responders:
            await r.stop()
        await fleet_nc.close()
        await tests_nc.close()
        await engine.dispose()
