"""Fleet's request/reply entry point."""

from __future__ import annotations

from typing import Any

from outpost_contracts.rpc import Operation
from outpost_fleet.app.handlers import HANDLERS, PROFILE_HANDLERS, Deps
from outpost_kit.responder import Handler, bind


def handlers(deps: Deps) -> dict[Operation[Any, Any], Handler]:
    return {**bind(HANDLERS, deps), **bind(PROFILE_HANDLERS, deps.profiles)}
