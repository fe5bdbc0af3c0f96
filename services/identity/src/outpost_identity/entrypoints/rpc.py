"""Identity's request/reply entry point: the handler table bound to its dependencies."""

from __future__ import annotations

from functools import partial
from typing import Any

from outpost_contracts.rpc import Operation
from outpost_identity.app.handlers import HANDLERS, Deps
from outpost_kit.responder import Handler


def handlers(deps: Deps) -> dict[Operation[Any, Any], Handler]:
    return {op: partial(fn, deps) for op, fn in HANDLERS.items()}
