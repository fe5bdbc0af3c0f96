"""Fleet's one registration table (ADR 0090): every operation the service answers, each
area's use cases in their own module (``app/config.py``: config artefacts and desired-state
bindings), all taking the one ``Deps``. The responder binds it (``entrypoints/rpc.py``)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from outpost_contracts.rpc import Operation
from outpost_fleet.app import config
from outpost_fleet.app.ports import ConfigUnitOfWork


@dataclass(frozen=True)
class Deps:
    """What the use cases are given, made once in ``bootstrap.deps``."""

    config: ConfigUnitOfWork


HANDLERS: dict[Operation[Any, Any], Callable[..., Awaitable[Any]]] = {
    **config.HANDLERS,
}
