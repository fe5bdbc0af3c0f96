"""The rollout's operations (ADR 0093), in the service's registration table
(``app/handlers.py``): a binding's and an artefact version's compliance, a device profile's
application to its devices."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from outpost_contracts import fleet
from outpost_contracts.envelope import RequestContext
from outpost_contracts.rpc import Operation
from outpost_fleet.app import compliance_status, profile_application

if TYPE_CHECKING:
    from outpost_fleet.app.handlers import Deps


async def get_binding_status(
    deps: Deps, ctx: RequestContext, q: fleet.GetBindingStatus
) -> fleet.ComplianceView:
    return await compliance_status.binding_status(deps.rollout, deps.clock, ctx, q)


async def get_artefact_version_status(
    deps: Deps, ctx: RequestContext, q: fleet.GetArtefactVersionStatus
) -> fleet.ComplianceView:
    return await compliance_status.artefact_version_status(deps.rollout, deps.clock, ctx, q)


async def get_profile_application(
    deps: Deps, ctx: RequestContext, q: fleet.GetProfileApplication
) -> fleet.ProfileApplicationView:
    return await profile_application.get_application(deps.rollout, ctx, q)


HANDLERS: dict[Operation[Any, Any], Callable[..., Awaitable[Any]]] = {
    fleet.GET_BINDING_STATUS: get_binding_status,
    fleet.GET_ARTEFACT_VERSION_STATUS: get_artefact_version_status,
    fleet.GET_PROFILE_APPLICATION: get_profile_application,
}
