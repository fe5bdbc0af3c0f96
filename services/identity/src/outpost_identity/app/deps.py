"""What identity's use cases are given (bootstrap builds it) and the checks several
aggregates' use cases share."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from uuid import UUID

from outpost_contracts import identity as api
from outpost_contracts.envelope import PrincipalKind, RequestContext
from outpost_contracts.errors import AccessDenied, NotFound, ServiceUnavailable
from outpost_identity.adapters.passwords import Passwords
from outpost_identity.adapters.signing import KeyVault
from outpost_identity.app.ports import IdentityTx, IdentityUnitOfWork, IntegrationConsumers


@dataclass(frozen=True)
class Deps:
    uow: IdentityUnitOfWork
    passwords: Passwords | None = None
    vault: KeyVault | None = None  # None: sessions are not configured (no encryption key)
    access_ttl: timedelta = timedelta(minutes=15)
    refresh_ttl: timedelta = timedelta(days=30)
    signing_key_lifetime: timedelta = timedelta(days=90)
    # None: integrations get no consumers (unit tests, a deployment without a broker)
    consumers: IntegrationConsumers | None = None


def require_operator(ctx: RequestContext) -> None:
    if ctx.principal.kind is not PrincipalKind.OPERATOR:
        raise AccessDenied("only the platform operator may do this")


async def require_active_org(tx: IdentityTx, org_id: UUID) -> None:
    status = await tx.organization_status(org_id)
    if status is None:
        raise NotFound("no such organization")
    if status is not api.OrganizationStatus.ACTIVE:
        raise AccessDenied("the organization is suspended")


def passwords(deps: Deps) -> Passwords:
    if deps.passwords is None:
        raise ServiceUnavailable("password hashing is not configured")
    return deps.passwords


def vault(deps: Deps) -> KeyVault:
    if deps.vault is None:
        raise ServiceUnavailable("sessions are not configured on this deployment")
    return deps.vault
