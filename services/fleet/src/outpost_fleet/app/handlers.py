"""Fleet's one registration table (ADR 0090): every operation the service answers, each
area's use cases in their own module (``app/config.py``: config artefacts and desired-state
bindings), all taking the one ``Deps``. The responder binds it (``entrypoints/rpc.py``)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from outpost_contracts.rpc import Operation
from outpost_fleet.app import config, packs, profiles, rollout_handlers
from outpost_fleet.app.ports import ConfigUnitOfWork, SchemaProblems, Targets
from outpost_fleet.app.profiles import ProfileDeps
from outpost_fleet.app.rollout_ports import RolloutUnitOfWork
from outpost_kit import ids


@dataclass(frozen=True)
class Deps:
    """What the use cases are given, made once in ``bootstrap.deps``."""

    config: ConfigUnitOfWork
    targets: Targets
    # A document against its JSON Schema (adapters/json_schema.py: the domain may not import
    # the validator, so the use case asks and hands the verdict to the decider).
    schema_problems: SchemaProblems
    profiles: ProfileDeps  # sensor and device profiles, packs (ADR 0092)
    rollout: RolloutUnitOfWork  # effective states, compliance, profile jobs (ADR 0093)
    clock: Callable[[], datetime] = field(default=ids.now)


HANDLERS: dict[Operation[Any, Any], Callable[..., Awaitable[Any]]] = {
    **config.HANDLERS,
    **rollout_handlers.HANDLERS,
}
# Profiles and packs take their own ``ProfileDeps`` (``Deps.profiles``).
PROFILE_HANDLERS: dict[Operation[Any, Any], Callable[..., Awaitable[Any]]] = {
    **profiles.HANDLERS,
    **packs.HANDLERS,
}
