"""JSON Schema of every contract, as the gateway serves it at ``/api/schemas``."""

from __future__ import annotations

import inspect
from types import ModuleType
from typing import Any

import msgspec

from outpost_contracts import (
    alerting,
    audit,
    commands,
    device_config,
    devices,
    envelope,
    errors,
    exports,
    fleet,
    identity,
    notifications,
    presence,
    provisioning,
    query,
    readings,
    reference_pairs,
    registry,
)
from outpost_contracts import annotations as annotation_contracts
from outpost_contracts.base import Contract, Event, Request

MODULES: tuple[ModuleType, ...] = (
    identity,
    devices,
    provisioning,
    registry,
    presence,
    commands,
    device_config,
    readings,
    annotation_contracts,
    reference_pairs,
    alerting,
    notifications,
    exports,
    fleet,
    audit,
    envelope,
    errors,
    query,
)


def contract_types() -> list[type[msgspec.Struct]]:
    """Every concrete, non-generic contract type the modules define."""
    found: dict[str, type[msgspec.Struct]] = {}
    for module in MODULES:
        for name, obj in vars(module).items():
            if (
                inspect.isclass(obj)
                and issubclass(obj, (Contract, Request, Event))
                and obj.__module__ == module.__name__
                and not name.startswith("_")
                and not getattr(obj, "__parameters__", ())
            ):
                found[name] = obj
    for extra in (readings.TelemetryMessage, query.ListQuery):
        found[extra.__name__] = extra
    return [found[name] for name in sorted(found)]


def json_schemas() -> dict[str, Any]:
    """``{"$defs": {...}, "contracts": {TypeName: {"$ref": ...}}}`` for every contract."""
    types = contract_types()
    refs, defs = msgspec.json.schema_components(types, ref_template="#/$defs/{name}")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "contracts": {t.__name__: r for t, r in zip(types, refs, strict=True)},
        "$defs": defs,
    }
