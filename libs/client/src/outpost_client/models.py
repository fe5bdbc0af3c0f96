"""The public API's models (generated from the OpenAPI document), and msgspec's ``UNSET``:
in a PATCH body, a field typed ``… | UnsetType | None`` is left out while ``UNSET`` (the
server leaves it unchanged) and sent as ``null`` when None (the server clears it)."""

from msgspec import UNSET, UnsetType

from outpost_client._generated import *  # noqa: F403
from outpost_client._generated import __all__ as _generated_all

__all__ = [*_generated_all, "UNSET", "UnsetType"]
