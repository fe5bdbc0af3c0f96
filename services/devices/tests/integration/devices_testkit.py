"""What the devices integration tests share: a migrated devices schema on the test cluster
with the service's own role, its unit of work and read path, and a request context."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from outpost_contracts.envelope import Principal, PrincipalKind, RequestContext
from outpost_devices import bootstrap
from outpost_devices.adapters.store import PgDevices, PgDevicesReads
from outpost_devices.app import handlers
from outpost_kit.cli import migrations_dir
from outpost_kit.db.engine import create_engine
from outpost_kit.db.eventstore import EventCodec
from outpost_kit.db.migrate import upgrade
from outpost_kit.db.provision import provision_service
from outpost_kit.db.reads import TenantReads


def ctx(org: uuid.UUID) -> RequestContext:
    """An API key of ``org`` with every scope."""
    return RequestContext(
        request_id=secrets.token_hex(16),
        org_id=org,
        principal=Principal(kind=PrincipalKind.API_KEY, id=uuid.uuid4(), org_id=org, scopes=("*",)),
    )


@asynccontextmanager
async def devices_deps(postgres_dsn: str, *, pool_size: int = 8) -> AsyncIterator[handlers.Deps]:
    """The devices schema migrated and provisioned (its role, FORCEd RLS), with every
    projector of the service; the use cases' ports are the Postgres adapters (a unit of work
    from them is the kit's, so a test may also check in SQL)."""
    dsn = await provision_service(postgres_dsn, "devices", secrets.token_urlsafe(16))
    await upgrade(postgres_dsn, "devices", migrations_dir(bootstrap.__file__))
    engine = create_engine(dsn, "devices", pool_size=pool_size)
    reads = await TenantReads.connect(dsn, "devices", size=2)
    try:
        yield handlers.Deps(
            uow=PgDevices(engine, EventCodec(bootstrap.EVENT_TYPES), bootstrap.ALL_PROJECTORS),
            reads=PgDevicesReads(reads),
        )
    finally:
        await reads.close()
        await engine.dispose()
