"""Devices's request/reply entry point: its handler table bound to its dependencies."""

from __future__ import annotations

from typing import Any

from outpost_contracts.rpc import Operation
from outpost_devices.app import presence, registry
from outpost_devices.app.handlers import HANDLERS, Deps
from outpost_kit.responder import Handler, bind


def handlers(deps: Deps) -> dict[Operation[Any, Any], Handler]:
    return bind({**HANDLERS, **registry.HANDLERS, **presence.HANDLERS}, deps)
