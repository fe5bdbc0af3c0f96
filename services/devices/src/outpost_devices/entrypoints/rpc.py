"""Devices's request/reply entry point: its handler table bound to its dependencies."""

from __future__ import annotations

from typing import Any

from outpost_contracts.rpc import Operation
from outpost_devices.app import commands, presence, registry
from outpost_devices.app.handlers import HANDLERS, Deps
from outpost_kit.responder import Handler, bind


def handlers(
    deps: Deps, command_deps: commands.CommandDeps | None = None
) -> dict[Operation[Any, Any], Handler]:
    command_deps = command_deps or commands.CommandDeps(uow=deps.uow)
    return {
        **bind({**HANDLERS, **registry.HANDLERS, **presence.HANDLERS}, deps),
        **bind(commands.HANDLERS, command_deps),
    }
