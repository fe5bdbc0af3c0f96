"""The fleet's rollout as users see it (ADR 0093): a desired-state binding's and a config
artefact version's compliance (``/status``), and the application of a changed device profile
to the devices that use it (``/application``), beside the groups of ADR 0090."""

from __future__ import annotations

from uuid import UUID

from litestar import get
from litestar.params import FromPath

from outpost_contracts.fleet import (
    GET_ARTEFACT_VERSION_STATUS,
    GET_BINDING_STATUS,
    GET_PROFILE_APPLICATION,
    ComplianceView,
    GetArtefactVersionStatus,
    GetBindingStatus,
    GetProfileApplication,
    ProfileApplicationView,
)
from outpost_gateway.entrypoints.fleet import Number, parse_version_number
from outpost_gateway.entrypoints.security import BackendDep, Ctx

_COUNTS = (
    "`targeted`: the devices whose effective desired state it is merged into; of them,"
    " `inSync` report the keys it sets as desired, `drifted` report something else, and"
    " `pending` have not reported since their desired state was delivered (or it was not"
    " delivered yet). Computed when asked."
)


@get(
    "/api/v1/desired-state-bindings/{id:uuid}/status",
    tags=["desired-state-bindings"],
    summary="A desired-state binding's compliance: {targeted, inSync, drifted, pending}",
    description=_COUNTS + " Each device is compared on the keys this binding sets for it.",
)
async def get_desired_state_binding_status(
    id: FromPath[UUID], ctx: Ctx, backend: BackendDep
) -> ComplianceView:
    return await backend.call(GET_BINDING_STATUS, ctx, GetBindingStatus(id=id))


@get(
    "/api/v1/config-artefacts/{id:uuid}/versions/{version:str}/status",
    tags=["config-artefacts"],
    summary="A config artefact version's compliance: {targeted, inSync, drifted, pending}",
    description=_COUNTS + " Each device is compared on the keys this version sets for it.",
)
async def get_config_artefact_version_status(
    id: FromPath[UUID], version: Number, ctx: Ctx, backend: BackendDep
) -> ComplianceView:
    request = GetArtefactVersionStatus(id=id, version=parse_version_number(version))
    return await backend.call(GET_ARTEFACT_VERSION_STATUS, ctx, request)


@get(
    "/api/v1/device-profiles/{id:uuid}/application",
    tags=["device-profiles"],
    summary="The newest change of a device profile, applied to the devices that use it",
    description=(
        "An asynchronous, resumable job: `status` PENDING, RUNNING, COMPLETED or FAILED;"
        " `done` of `total` devices so far (`missing`: devices gone meanwhile). 404 when"
        " the profile has not changed while devices used it."
    ),
)
async def get_device_profile_application(
    id: FromPath[UUID], ctx: Ctx, backend: BackendDep
) -> ProfileApplicationView:
    return await backend.call(GET_PROFILE_APPLICATION, ctx, GetProfileApplication(id=id))


ROUTES = [
    get_desired_state_binding_status,
    get_config_artefact_version_status,
    get_device_profile_application,
]
