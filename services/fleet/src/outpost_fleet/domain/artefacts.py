"""The config artefact aggregate: a named series of immutable JSON documents (ADR 0088).

Every change is a new version (1, 2, ...); old versions stay readable; publishing the same
document and schema as the latest version is no change (no version). A document is a JSON
object of at most ``MAX_ARTEFACT_BYTES`` encoded, and so is its schema. Whether the document
satisfies the schema is decided outside the domain, by a JSON Schema validator
(``outpost_fleet.adapters.json_schema``), and reaches the decider as the list of problems it
found, the way identity's deciders receive token hashes made outside. A version in use (a
binding pins it, or it is the latest and a binding follows "latest", or a device profile names
it) cannot be deleted; the use case reads the uses and passes them in. The last live version
cannot be deleted either: deleting the artefact says that.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import msgspec

from outpost_contracts.base import Event
from outpost_contracts.errors import (
    Conflict,
    FieldError,
    NotFound,
    ValidationFailed,
    validation_error,
)
from outpost_contracts.fleet import (
    MAX_ARTEFACT_BYTES,
    ConfigArtefactCreated,
    ConfigArtefactDeleted,
    ConfigArtefactVersionDeleted,
    ConfigArtefactVersionPublished,
)

STREAM_TYPE = "config_artefact"


class ArtefactVersion(msgspec.Struct, frozen=True, kw_only=True):
    version: int
    document: dict[str, Any]
    schema: dict[str, Any] | None


class ConfigArtefact(msgspec.Struct, frozen=True, kw_only=True):
    id: UUID
    name: str
    versions: dict[int, ArtefactVersion]  # the live ones
    last_version: int  # the highest ever published: numbers are never reused
    deleted: bool
    version: int  # the stream's

    @property
    def latest(self) -> ArtefactVersion | None:
        return self.versions[max(self.versions)] if self.versions else None


class CreateArtefact(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    document: dict[str, Any]
    schema: dict[str, Any] | None = None
    schema_problems: tuple[str, ...] = ()  # found outside by the JSON Schema validator


class PublishVersion(msgspec.Struct, frozen=True, kw_only=True):
    """A new version; ``schema`` None keeps the latest version's schema, ``replace_schema``
    with None drops it."""

    document: dict[str, Any]
    schema: dict[str, Any] | None = None
    replace_schema: bool = False
    schema_problems: tuple[str, ...] = ()


class DeleteVersion(msgspec.Struct, frozen=True, kw_only=True):
    version: int
    used_by: tuple[str, ...] = ()  # what uses it ("binding <id>", "device profile <id>")


class DeleteArtefact(msgspec.Struct, frozen=True, kw_only=True):
    used_by: tuple[str, ...] = ()


Command = CreateArtefact | PublishVersion | DeleteVersion | DeleteArtefact


def schema_for(state: ConfigArtefact | None, command: CreateArtefact | PublishVersion) -> Any:
    """The schema a new version is checked against (what the validator outside is given)."""
    if isinstance(command, CreateArtefact) or command.replace_schema or command.schema is not None:
        return command.schema
    latest = state.latest if state is not None else None
    return latest.schema if latest is not None else None


def _check(document: Any, schema: Any, problems: tuple[str, ...]) -> None:
    fields: list[FieldError] = []
    if not isinstance(document, dict):
        fields.append(FieldError(name="document", message="must be a JSON object"))
    elif len(msgspec.json.encode(document)) > MAX_ARTEFACT_BYTES:
        fields.append(
            FieldError(name="document", message=f"larger than {MAX_ARTEFACT_BYTES} bytes")
        )
    if schema is not None and len(msgspec.json.encode(schema)) > MAX_ARTEFACT_BYTES:
        fields.append(FieldError(name="schema", message=f"larger than {MAX_ARTEFACT_BYTES} bytes"))
    fields.extend(FieldError(name="document", message=p) for p in problems)
    if fields:
        raise ValidationFailed("the document is not a valid config artefact", fields=fields)


def decide(state: ConfigArtefact | None, command: Command, now: datetime) -> list[Event]:
    if isinstance(command, CreateArtefact):
        if state is not None:
            raise Conflict("the config artefact already exists")
        if not command.name.strip():
            raise validation_error("name", "must not be blank")
        _check(command.document, command.schema, command.schema_problems)
        return [
            ConfigArtefactCreated(name=command.name),
            ConfigArtefactVersionPublished(
                version=1, document=command.document, schema=command.schema
            ),
        ]
    if state is None or state.deleted:
        raise NotFound("no such config artefact")
    if isinstance(command, PublishVersion):
        schema = schema_for(state, command)
        _check(command.document, schema, command.schema_problems)
        latest = state.latest
        if latest is not None and latest.document == command.document and latest.schema == schema:
            return []
        return [
            ConfigArtefactVersionPublished(
                version=state.last_version + 1, document=command.document, schema=schema
            )
        ]
    if isinstance(command, DeleteVersion):
        if command.version not in state.versions:
            raise NotFound(f"no version {command.version} of this config artefact")
        if command.used_by:
            raise Conflict(
                f"version {command.version} is in use",
                details={"usedBy": list(command.used_by)},
            )
        if len(state.versions) == 1:
            raise Conflict("the last version cannot be deleted: delete the config artefact")
        return [ConfigArtefactVersionDeleted(version=command.version)]
    if command.used_by:
        raise Conflict("the config artefact is in use", details={"usedBy": list(command.used_by)})
    return [ConfigArtefactDeleted()]


def evolve(state: ConfigArtefact | None, event: Event, stream_id: UUID) -> ConfigArtefact | None:
    if isinstance(event, ConfigArtefactCreated):
        return ConfigArtefact(
            id=stream_id, name=event.name, versions={}, last_version=0, deleted=False, version=1
        )
    assert state is not None
    version = state.version + 1
    if isinstance(event, ConfigArtefactVersionPublished):
        published = ArtefactVersion(
            version=event.version, document=event.document, schema=event.schema
        )
        return msgspec.structs.replace(
            state,
            versions={**state.versions, event.version: published},
            last_version=max(state.last_version, event.version),
            version=version,
        )
    if isinstance(event, ConfigArtefactVersionDeleted):
        versions = {k: v for k, v in state.versions.items() if k != event.version}
        return msgspec.structs.replace(state, versions=versions, version=version)
    if isinstance(event, ConfigArtefactDeleted):
        return msgspec.structs.replace(state, deleted=True, version=version)
    return msgspec.structs.replace(state, version=version)
