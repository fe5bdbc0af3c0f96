"""The filter/query tree that every list request carries (docs/api.md, "Collections").

The gateway compiles both query styles (``field__op=value`` and OData ``$filter``) into
this one tree; the owning service checks it against an allowlist of fields and runs it in
SQL. The tree is data, so it crosses NATS like any other contract.
"""

from __future__ import annotations

from typing import Generic, Literal, TypeVar

import msgspec

from outpost_contracts.base import Contract

T = TypeVar("T")

Scalar = str | int | float | bool | None
CmpOp = Literal[
    "eq", "ne", "lt", "le", "gt", "ge", "in", "nin", "contains", "startswith", "endswith"
]
CMP_OPS: tuple[str, ...] = CmpOp.__args__  # type: ignore[attr-defined]

MAX_DEPTH = 8
MAX_NODES = 64
MAX_LIMIT = 1000
DEFAULT_LIMIT = 50


class Cmp(msgspec.Struct, tag="cmp", kw_only=True, frozen=True):
    """``field <op> value``; ``in``/``nin`` take a list."""

    field: str
    op: CmpOp
    value: Scalar | list[Scalar]


class And(msgspec.Struct, tag="and", kw_only=True, frozen=True):
    items: list[Node]


class Or(msgspec.Struct, tag="or", kw_only=True, frozen=True):
    items: list[Node]


class Not(msgspec.Struct, tag="not", kw_only=True, frozen=True):
    item: Node


class AnyOf(msgspec.Struct, tag="any", kw_only=True, frozen=True):
    """OData ``rel/any(x: predicate)`` over a to-many relation such as tags; the predicate's
    fields are the related item's fields."""

    relation: str
    predicate: Node | None = None


class AllOf(msgspec.Struct, tag="all", kw_only=True, frozen=True):
    relation: str
    predicate: Node


Node = Cmp | And | Or | Not | AnyOf | AllOf


class OrderBy(msgspec.Struct, kw_only=True, frozen=True):
    field: str
    desc: bool = False


class ListQuery(Contract, kw_only=True, frozen=True):
    filter: Node | None = None
    limit: int = DEFAULT_LIMIT
    after: str | None = None
    order: Literal["ASC", "DESC"] = "ASC"
    order_by: list[OrderBy] = msgspec.field(default_factory=list)
    skip: int = 0
    select: list[str] | None = None
    expand: list[str] | None = None
    include_total: bool = False


class Page(Contract, Generic[T], kw_only=True, frozen=True, omit_defaults=True):
    """docs/api.md's list shape. ``totalCount`` appears only when asked for."""

    data: list[T]
    object: Literal["list"] = "list"
    limit: int = DEFAULT_LIMIT
    after: str | None = None
    order: Literal["ASC", "DESC"] = "ASC"
    has_more: bool = False
    total_count: int | None = None


def depth(node: Node | None) -> int:
    """Nesting depth of a tree (a leaf is 1)."""
    if node is None:
        return 0
    if isinstance(node, (And, Or)):
        return 1 + max((depth(i) for i in node.items), default=0)
    if isinstance(node, Not):
        return 1 + depth(node.item)
    if isinstance(node, (AnyOf, AllOf)):
        return 1 + depth(node.predicate)
    return 1


def count_nodes(node: Node | None) -> int:
    if node is None:
        return 0
    if isinstance(node, (And, Or)):
        return 1 + sum(count_nodes(i) for i in node.items)
    if isinstance(node, Not):
        return 1 + count_nodes(node.item)
    if isinstance(node, (AnyOf, AllOf)):
        return 1 + count_nodes(node.predicate)
    return 1


def fields_of(node: Node | None) -> set[str]:
    """Every top-level field a tree names (relations by their relation name)."""
    if node is None:
        return set()
    if isinstance(node, Cmp):
        return {node.field}
    if isinstance(node, (And, Or)):
        return set().union(*(fields_of(i) for i in node.items))
    if isinstance(node, Not):
        return fields_of(node.item)
    return {node.relation}
