"""Config artefacts' versions (docs/api.md, "Config artefacts and desired-state bindings";
ADR 0090), beside the artefacts' and bindings' resource groups (``domain/resources.py``):
publish a new immutable version, list an artefact's versions, get and delete one."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from litestar import Response, delete, get, post
from litestar.params import FromPath, JSONBody, Parameter

from outpost_contracts.base import whole
from outpost_contracts.errors import validation_error
from outpost_contracts.fleet import (
    DELETE_CONFIG_ARTEFACT_VERSION,
    GET_CONFIG_ARTEFACT_VERSION,
    LIST_CONFIG_ARTEFACT_VERSIONS,
    MAX_VERSION,
    PUBLISH_CONFIG_ARTEFACT_VERSION,
    ConfigArtefactVersionView,
    DeleteConfigArtefactVersion,
    GetConfigArtefactVersion,
    PublishConfigArtefactVersion,
    PublishConfigArtefactVersionBody,
)
from outpost_gateway.entrypoints.params import (
    IfMatch,
    Listing,
    etag,
    etag_header,
    is_number,
    parse_if_match,
)
from outpost_gateway.entrypoints.rendering import ListOf, fetch_list, resource_of
from outpost_gateway.entrypoints.security import BackendDep, Ctx

VERSION = resource_of(ConfigArtefactVersionView)
VERSIONS = "/api/v1/config-artefacts/{id:uuid}/versions"
TAGS = ["config-artefacts"]
# A string in the route (any path segment reaches the policy check: an unauthorized caller
# is told 403, not 404), checked here: 1 to MAX_VERSION.
Number = Annotated[
    str, Parameter(pattern=whole(r"[1-9][0-9]{0,9}"), description="The version number")
]


def parse_version_number(version: str) -> int:
    """A version number from the path: 400 ``validation_error`` on ``version`` otherwise
    (after the route's policy, so a caller without the scope is refused first)."""
    return _number(version)


def _number(version: str) -> int:
    if not is_number(version) or not 1 <= int(version) <= MAX_VERSION:
        raise validation_error("version", f"must be a version number (1 to {MAX_VERSION})")
    return int(version)


@post(
    VERSIONS,
    tags=TAGS,
    summary="Publish a new version of a config artefact",
    description=(
        "`{document, schema?}`: a new immutable version numbered after every version ever"
        " published. `schema` absent keeps the latest version's JSON Schema, `null` drops it,"
        " an object replaces it; the document must satisfy it (422 `validation_error`"
        " listing the problems as `<JSON Pointer>: <message>`), and be a JSON object of at"
        " most 256 KiB encoded (422 beyond; 413 beyond the request body limit). The same"
        " document and schema as the latest version publish nothing: the latest version is"
        " answered. `If-Match` names the artefact's latest version (its ETag); the answer's"
        " ETag is the artefact's after the publication."
    ),
    response_headers=etag_header("The config artefact's latest version"),
)
async def publish_config_artefact_version(
    id: FromPath[UUID],
    data: JSONBody[PublishConfigArtefactVersionBody],
    ctx: Ctx,
    backend: BackendDep,
    if_match: IfMatch = None,
) -> Response[ConfigArtefactVersionView]:
    cmd = PublishConfigArtefactVersion(
        id=id,
        document=data.document,
        schema=data.schema,
        expected_version=parse_if_match(if_match),
    )
    view = await backend.call(PUBLISH_CONFIG_ARTEFACT_VERSION, ctx, cmd)
    return Response(view, status_code=201, headers=etag(view.version))


@get(
    VERSIONS,
    tags=TAGS,
    summary="List a config artefact's versions",
    description=(
        "The live versions, oldest first, without their documents (`sizeBytes` says how"
        " large each is): `GET …/versions/{version}` has the document. `after` is a version"
        " number."
    ),
)
async def list_config_artefact_versions(
    id: FromPath[UUID], ctx: Ctx, backend: BackendDep, listing: Listing
) -> ListOf[ConfigArtefactVersionView]:
    return await fetch_list(listing, backend, ctx, LIST_CONFIG_ARTEFACT_VERSIONS, VERSION, id=id)


@get(
    VERSIONS + "/{version:str}",
    tags=TAGS,
    summary="Get one version of a config artefact, with its document and schema",
)
async def get_config_artefact_version(
    id: FromPath[UUID], version: Number, ctx: Ctx, backend: BackendDep
) -> ConfigArtefactVersionView:
    q = GetConfigArtefactVersion(id=id, version=_number(version))
    return await backend.call(GET_CONFIG_ARTEFACT_VERSION, ctx, q)


@delete(
    VERSIONS + "/{version:str}",
    tags=TAGS,
    summary="Delete a version no binding uses",
    description=(
        "409 `conflict` (`details.usedBy`) while a binding pins the version, or follows"
        " `latest` and it is the latest; 409 for the last live version (delete the artefact"
        " instead). Version numbers are never reused."
    ),
)
async def delete_config_artefact_version(
    id: FromPath[UUID], version: Number, ctx: Ctx, backend: BackendDep
) -> None:
    cmd = DeleteConfigArtefactVersion(id=id, version=_number(version))
    await backend.call(DELETE_CONFIG_ARTEFACT_VERSION, ctx, cmd)


ROUTES = [
    publish_config_artefact_version,
    list_config_artefact_versions,
    get_config_artefact_version,
    delete_config_artefact_version,
]
