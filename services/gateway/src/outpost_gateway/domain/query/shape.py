"""``$select`` and ``$expand``: which fields of a rendered resource a client gets back.

A ``Resource`` names the fields of a view (as they appear in JSON) and the relations a client
may expand. Today the only relation is devices' ``tags``, which every device carries inline,
so expanding it changes nothing; a real relation will add a fetch where the route builds the
response, and ``prune`` already applies a nested ``$select`` to expanded items.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from outpost_contracts.errors import validation_error
from outpost_gateway.domain.query.odata import EXPAND, SELECT, ExpandItem

ALWAYS_SELECTED = "id"


@dataclass(frozen=True)
class Resource:
    fields: frozenset[str]
    relations: Mapping[str, Resource] = field(default_factory=dict)


@dataclass(frozen=True)
class Shape:
    select: list[str] | None = None
    expand: list[ExpandItem] = field(default_factory=list)

    @property
    def is_full(self) -> bool:
        return self.select is None and all(e.select is None and not e.expand for e in self.expand)


def check_shape(
    select: list[str] | None, expand: list[ExpandItem] | None, resource: Resource
) -> Shape:
    """Validate ``$select``/``$expand`` against a resource; unknown names are refused."""
    for name in select or ():
        if name not in resource.fields:
            raise validation_error(SELECT, f"unknown field '{name}'")
    _check_expand(expand or [], resource)
    return Shape(select=select, expand=list(expand or []))


def _check_expand(items: list[ExpandItem], resource: Resource) -> None:
    for item in items:
        rel = resource.relations.get(item.name)
        if rel is None:
            allowed = ", ".join(sorted(resource.relations)) or "none"
            raise validation_error(
                EXPAND, f"'{item.name}' cannot be expanded; expandable here: {allowed}"
            )
        for name in item.select or ():
            if name not in rel.fields:
                raise validation_error(EXPAND, f"unknown field '{name}' in {item.name}($select)")
        _check_expand(item.expand, rel)


def prune(obj: Mapping[str, Any], shape: Shape) -> dict[str, Any]:
    """The rendered object restricted to the shape (``id`` is always kept)."""
    expanded = {e.name: e for e in shape.expand}
    if shape.select is None:
        out = dict(obj)
    else:
        keep = {ALWAYS_SELECTED, *shape.select, *expanded}
        out = {k: v for k, v in obj.items() if k in keep}
    for name, item in expanded.items():
        nested = Shape(select=item.select, expand=item.expand)
        value = out.get(name)
        if nested.is_full or value is None:
            continue
        if isinstance(value, list):
            out[name] = [prune(v, nested) if isinstance(v, Mapping) else v for v in value]
        elif isinstance(value, Mapping):
            out[name] = prune(value, nested)
    return out
