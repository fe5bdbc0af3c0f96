"""Packs (ADR 0092) beyond the five routes of their resource group (``domain/resources.py``):
a pack's self-contained document (``GET /packs/{id}/export``) and the import of one
(``POST /packs/import``, idempotent per pack version)."""

from __future__ import annotations

from uuid import UUID

from litestar import get, post
from litestar.params import FromPath, JSONBody

from outpost_contracts.fleet import (
    EXPORT_PACK,
    IMPORT_PACK,
    ExportPack,
    ImportPack,
    PackDocument,
    PackImportView,
)
from outpost_gateway.entrypoints.security import BackendDep, Ctx

TAGS = ["packs"]


@get(
    "/api/v1/packs/{id:uuid}/export",
    tags=TAGS,
    summary="A pack as a self-contained JSON document",
    description=(
        "An authored pack: its items as they are now (`{format, name, version, items: [{kind,"
        " key, content}]}`), each device profile with the sensor profiles and the config"
        " artefact (its latest version) it names, by their keys in the pack. An imported pack:"
        " the document it was installed from."
    ),
)
async def export_pack(id: FromPath[UUID], ctx: Ctx, backend: BackendDep) -> PackDocument:
    return await backend.call(EXPORT_PACK, ctx, ExportPack(id=id))


@post(
    "/api/v1/packs/import",
    tags=TAGS,
    status_code=200,
    summary="Install a pack document (idempotent per pack version)",
    description=(
        "The body is a document from `GET /packs/{id}/export`. The first import creates every"
        " item (`outcome` INSTALLED); the installed version again changes nothing (UNCHANGED);"
        " a newer version (UPGRADED) upgrades what users left as installed, leaves what they"
        " changed and reports it (`conflicts`), and removes what the new version dropped"
        " unless users changed it. An older version, or the installed version with other"
        " content, is `conflict` (409)."
    ),
)
async def import_pack(
    data: JSONBody[PackDocument], ctx: Ctx, backend: BackendDep
) -> PackImportView:
    return await backend.call(IMPORT_PACK, ctx, ImportPack(document=data))


ROUTES = [export_pack, import_pack]
