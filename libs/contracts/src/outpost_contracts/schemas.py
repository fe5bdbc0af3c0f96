"""JSON Schema of every contract, as the gateway serves it at ``/api/schemas``."""

from __future__ import annotations

from typing import Any

import msgspec

from outpost_contracts import alerting, devices, exports, identity, readings  # noqa: F401
from outpost_contracts.base import registered_contracts
from outpost_contracts.query import ListQuery


def json_schemas() -> dict[str, Any]:
    """``{"$defs": {...}, "contracts": {TypeName: {"$ref": ...}}}`` for every contract."""
    types: list[Any] = sorted(
        {t for t in registered_contracts() if not getattr(t, "__parameters__", ())},
        key=lambda t: t.__name__,
    )
    types.append(ListQuery)
    refs, defs = msgspec.json.schema_components(types, ref_template="#/$defs/{name}")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "contracts": {t.__name__: r for t, r in zip(types, refs, strict=True)},
        "$defs": defs,
    }
