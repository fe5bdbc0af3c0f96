"""What fleet's use cases need of storage and of other services, as ports (the shape of ADR
0089): a unit of work opened per tenant that carries the event stream (for the kit's
``Aggregate``) and the reads of the read models; the targets a binding may name, asked of
the devices service. Postgres and NATS implement them in ``adapters/``. No SQL and no driver
type here. Each area of the service (config artefacts and bindings; profiles and packs; the
device read model and jobs) has its own transaction port, so each one's statements stay in
its own adapter module."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol
from uuid import UUID

from outpost_contracts import fleet as api
from outpost_contracts.envelope import RequestContext
from outpost_contracts.query import ListQuery, Page
from outpost_kit.aggregate import EventStream

# A document against a JSON Schema: the problems found (``adapters/json_schema.problems``).
SchemaProblems = Callable[[Any, dict[str, Any] | None], tuple[str, ...]]


class ConfigTx(Protocol):
    """One transaction in one tenant over config artefacts and desired-state bindings;
    leaving it without ``commit()`` rolls back."""

    @property
    def events(self) -> EventStream: ...

    async def commit(self) -> None: ...

    async def artefact(self, artefact_id: UUID) -> api.ConfigArtefactView | None:
        """The artefact with its latest version's document and schema."""
        ...

    async def artefacts(self, query: ListQuery) -> Page[api.ConfigArtefactView]: ...

    async def name_taken(self, name: str) -> bool: ...

    async def lock_artefact(self, artefact_id: UUID, *, exclusive: bool) -> bool:
        """Lock the artefact: exclusively to delete it or one of its versions, shared by a
        binding being made or changed, so no binding starts using what is being deleted.
        False: the tenant has no such artefact."""
        ...

    async def version(
        self, artefact_id: UUID, number: int
    ) -> api.ConfigArtefactVersionView | None: ...

    async def versions(
        self, artefact_id: UUID, query: ListQuery, after: int | None
    ) -> Page[api.ConfigArtefactVersionView]:
        """A page of the artefact's live versions, after version number ``after``."""
        ...

    async def uses(self, artefact_id: UUID, version: int | None, *, latest: bool) -> list[str]:
        """What uses the artefact (``version`` None) or that version of it (``latest``: it
        is the latest one), as ``"binding <id>"`` and ``"device profile <id>"``."""
        ...

    async def profile_exists(self, profile_id: UUID) -> bool:
        """Whether the tenant has the device profile (a PROFILE target)."""
        ...

    async def binding(self, binding_id: UUID) -> api.DesiredStateBindingView | None: ...

    async def bindings(self, query: ListQuery) -> Page[api.DesiredStateBindingView]: ...


class ConfigUnitOfWork(Protocol):
    """``async with uow(org_id) as tx: ...; await tx.commit()``."""

    def __call__(self, org_id: UUID | None) -> AbstractAsyncContextManager[ConfigTx]: ...


class Targets(Protocol):
    """Whether a binding's SITE, GROUP or DEVICE target names one of the caller's
    organization (ORGANIZATION always does; a PROFILE is fleet's own: ``ConfigTx``)."""

    async def exists(self, ctx: RequestContext, target: api.Target) -> bool: ...
