"""Use cases of config artefacts (and their versions) and desired-state bindings, and their
handler table (merged into fleet's in ``app/handlers.py``)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from outpost_contracts.rpc import Operation

HANDLERS: dict[Operation[Any, Any], Callable[..., Awaitable[Any]]] = {}
