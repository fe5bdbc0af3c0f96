"""Collections: the contracts' filter tree compiled to SQL against a per-collection allowlist,
with keyset pagination on the id (UUIDv7, so id order is creation order).

``order_by`` (OData ``$orderby``) names orderable fields of the allowlist; ordering by any
field other than the id pages with ``skip`` (``$skip``) only, and ``after`` is refused with
it (ADR 0015). Ties are broken by the id in ``order``'s direction.

A field that is not in the allowlist, an operator a field does not support, or a value of
the wrong type is a ``validation_error`` naming the field; nothing reaches SQL unchecked.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from outpost_contracts.errors import validation_error
from outpost_contracts.query import (
    MAX_DEPTH,
    MAX_LIMIT,
    MAX_NODES,
    AllOf,
    And,
    AnyOf,
    Cmp,
    ListQuery,
    Node,
    Not,
    Or,
    Page,
    count_nodes,
    depth,
)
from outpost_kit.db.uow import cached_text

_SQL_OPS = {"eq": "=", "ne": "<>", "lt": "<", "le": "<=", "gt": ">", "ge": ">="}
_ORDERED = frozenset({"lt", "le", "gt", "ge"})
_TEXT_OPS = frozenset({"contains", "startswith", "endswith"})


def _uuid(v: Any) -> UUID:
    return v if isinstance(v, UUID) else UUID(str(v))


def _datetime(v: Any) -> datetime:
    if isinstance(v, datetime):
        return v
    s = str(v)
    if len(s) == 16 and s[8] == "T" and s.endswith("Z"):  # 20161130T162512Z
        s = f"{s[0:4]}-{s[4:6]}-{s[6:8]}T{s[9:11]}:{s[11:13]}:{s[13:15]}Z"
    parsed = datetime.fromisoformat(s.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        raise ValueError("timestamps need a time zone (use Z)")
    return parsed


def _bool(v: Any) -> bool:
    if isinstance(v, bool):
        return v
    if str(v).lower() in ("true", "1"):
        return True
    if str(v).lower() in ("false", "0"):
        return False
    raise ValueError("expected true or false")


def _integer(bits: int) -> Callable[[Any], int]:
    """An integer a column of ``bits`` bits holds: an int, its decimal text, or a float with
    no fraction; anything else, or out of range, is a ValueError (a validation_error), never
    a number Postgres refuses (decision 77)."""
    low, high = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1

    def coerce(v: Any) -> int:
        if isinstance(v, bool):
            raise ValueError("expected an integer")
        if isinstance(v, float):
            if not v.is_integer():  # also NaN and infinities
                raise ValueError("expected an integer")
            value = int(v)
        elif isinstance(v, int):
            value = v
        else:
            text = str(v).strip()
            if len(text.lstrip("+-").lstrip("0")) > 20:
                raise ValueError(f"out of range ({low} to {high})")
            value = int(text)
        if not low <= value <= high:
            raise ValueError(f"out of range ({low} to {high})")
        return value

    return coerce


def _float(v: Any) -> float:
    """A finite double: no NaN, no infinity (``'inf'``, ``'nan'``, ``1e999``)."""
    if isinstance(v, bool):
        raise ValueError("expected a number")
    value = float(v)
    if not math.isfinite(value):
        raise ValueError("expected a finite number")
    return value


COERCE: dict[str, Callable[[Any], Any]] = {
    "uuid": _uuid,
    "text": str,
    "int": _integer(64),  # bigint
    "int32": _integer(32),  # integer
    "float": _float,  # double precision
    "bool": _bool,
    "datetime": _datetime,
}


@dataclass(frozen=True)
class Field:
    """A filterable field: its SQL expression and value type (a key of ``COERCE``)."""

    sql: str
    # A key of ``COERCE``: "int" for bigint columns, "int32" for integer ones, "float" for
    # double precision (finite only).
    type: str = "text"
    ops: frozenset[str] | None = None  # None: every operator that fits the type
    orderable: bool = True  # may be named in order_by ($orderby)


@dataclass(frozen=True)
class Relation:
    """A to-many relation stored as a JSONB array of objects (e.g. tags: [{key, value}])."""

    sql: str
    fields: Mapping[str, str]  # field name → type


@dataclass(frozen=True)
class Collection:
    table: str
    columns: str  # the SELECT list
    fields: Mapping[str, Field]
    relations: Mapping[str, Relation] = field(default_factory=dict)
    id_column: str = "id"


class _Compiler:
    def __init__(self, collection: Collection) -> None:
        self.c = collection
        self.params: dict[str, Any] = {}

    def param(self, value: Any) -> str:
        name = f"p{len(self.params)}"
        self.params[name] = value
        return f":{name}"

    def node(self, node: Node, scope: Mapping[str, Field] | None = None) -> str:
        fields = scope if scope is not None else self.c.fields
        if isinstance(node, Cmp):
            return self.cmp(node, fields)
        if isinstance(node, And):
            return (
                "(" + " AND ".join(self.node(i, scope) for i in node.items) + ")"
                if node.items
                else "TRUE"
            )
        if isinstance(node, Or):
            return (
                "(" + " OR ".join(self.node(i, scope) for i in node.items) + ")"
                if node.items
                else "FALSE"
            )
        if isinstance(node, Not):
            return f"(NOT {self.node(node.item, scope)})"
        if isinstance(node, (AnyOf, AllOf)):
            return self.relation(node)
        raise validation_error("$filter", "unsupported expression")

    def relation(self, node: AnyOf | AllOf) -> str:
        rel = self.c.relations.get(node.relation)
        if rel is None:
            raise validation_error(node.relation, "unknown relation")
        inner = {
            name: Field(sql=f"(r.value->>'{name}')", type=typ) for name, typ in rel.fields.items()
        }
        source = f"jsonb_array_elements({rel.sql}) AS r(value)"
        if isinstance(node, AnyOf):
            cond = self.node(node.predicate, inner) if node.predicate is not None else "TRUE"
            return f"EXISTS (SELECT 1 FROM {source} WHERE {cond})"
        return f"NOT EXISTS (SELECT 1 FROM {source} WHERE NOT ({self.node(node.predicate, inner)}))"

    def cmp(self, node: Cmp, fields: Mapping[str, Field]) -> str:
        f = fields.get(node.field)
        if f is None:
            raise validation_error(node.field, "unknown field")
        if f.ops is not None and node.op not in f.ops:
            raise validation_error(node.field, f"operator '{node.op}' is not supported")
        if node.op in _TEXT_OPS and f.type != "text":
            raise validation_error(node.field, f"operator '{node.op}' needs a text field")
        if node.op in _ORDERED and f.type in ("bool", "uuid"):
            raise validation_error(node.field, f"operator '{node.op}' is not supported")
        coerce = COERCE[f.type]
        try:
            if node.op in ("in", "nin"):
                values = node.value if isinstance(node.value, list) else [node.value]
                if not values or len(values) > 100:
                    raise ValueError("expected 1 to 100 values")
                typed = [coerce(v) for v in values]
                sql = f"{f.sql} = ANY({self.param(typed)})"
                return sql if node.op == "in" else f"NOT ({sql})"
            if node.value is None:
                if node.op == "eq":
                    return f"{f.sql} IS NULL"
                if node.op == "ne":
                    return f"{f.sql} IS NOT NULL"
                raise ValueError("null can only be compared with eq or ne")
            if isinstance(node.value, list):
                raise ValueError("a list needs the 'in' or 'nin' operator")
            value = coerce(node.value)
        except (ValueError, TypeError) as exc:
            raise validation_error(node.field, f"invalid value: {exc}") from exc
        if node.op in _TEXT_OPS:
            escaped = str(value).replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            pattern = {
                "contains": f"%{escaped}%",
                "startswith": f"{escaped}%",
                "endswith": f"%{escaped}",
            }[node.op]
            return f"{f.sql} LIKE {self.param(pattern)}"
        return f"{f.sql} {_SQL_OPS[node.op]} {self.param(value)}"


def compile_filter(collection: Collection, node: Node | None) -> tuple[str, dict[str, Any]]:
    """``(where_sql, params)`` for a filter tree, after checking its size."""
    if node is None:
        return "TRUE", {}
    if depth(node) > MAX_DEPTH:
        raise validation_error("$filter", f"nested deeper than {MAX_DEPTH}")
    if count_nodes(node) > MAX_NODES:
        raise validation_error("$filter", f"more than {MAX_NODES} conditions")
    comp = _Compiler(collection)
    return comp.node(node), comp.params


def compile_order(collection: Collection, query: ListQuery) -> tuple[str, bool]:
    """``(order_by_sql, keyset)``: keyset is False when rows are ordered by another field
    than the id, so ``after`` cannot continue a page."""
    idc = collection.id_column
    parts: list[str] = []
    keyset = True
    for item in query.order_by:
        f = collection.fields.get(item.field)
        if f is None:
            raise validation_error("$orderby", f"unknown field '{item.field}'")
        if not f.orderable:
            raise validation_error("$orderby", f"'{item.field}' cannot be ordered by")
        direction = "DESC" if item.desc else "ASC"
        if f.sql == idc:
            parts.append(f"{idc} {direction}")
            break  # the id is unique: nothing after it changes the order
        keyset = False
        parts.append(f"{f.sql} {direction}")
    if not parts or not parts[-1].startswith(f"{idc} "):
        parts.append(f"{idc} {query.order}")
    return ", ".join(parts), keyset


def _effective_order(collection: Collection, query: ListQuery) -> str:
    """The id direction a keyset page follows: ``$orderby=id desc`` overrides ``order``."""
    for item in query.order_by:
        f = collection.fields.get(item.field)
        if f is not None and f.sql == collection.id_column:
            return "DESC" if item.desc else "ASC"
    return query.order


async def list_page(
    conn: AsyncConnection,
    collection: Collection,
    query: ListQuery,
    to_view: Callable[[Mapping[str, Any]], Any],
    *,
    extra_where: str = "TRUE",
    extra_params: Mapping[str, Any] | None = None,
) -> Page[Any]:
    """One page of ``collection``, in creation order unless ``order_by`` says otherwise
    (docs/api.md, "Collections")."""
    if not 1 <= query.limit <= MAX_LIMIT:
        raise validation_error("limit", f"must be between 1 and {MAX_LIMIT}")
    if query.skip < 0:
        raise validation_error("$skip", "must not be negative")
    where, params = compile_filter(collection, query.filter)
    params.update(extra_params or {})
    idc = collection.id_column
    clauses = [where, extra_where]
    order_sql, keyset = compile_order(collection, query)
    direction = _effective_order(collection, query)
    if query.after is not None:
        if not keyset:
            raise validation_error(
                "after",
                "cannot continue a page ordered by $orderby on a field other than id;"
                " use $skip to page",
            )
        try:
            params["_after"] = UUID(query.after)
        except ValueError as exc:
            raise validation_error("after", "must be the id of an item") from exc
        clauses.append(f"{idc} {'>' if direction == 'ASC' else '<'} :_after")
    params["_limit"] = query.limit + 1
    params["_skip"] = query.skip
    sql = (
        f"SELECT {collection.columns} FROM {collection.table} WHERE {' AND '.join(clauses)}"
        f" ORDER BY {order_sql} LIMIT :_limit OFFSET :_skip"
    )
    rows = [dict(r._mapping) for r in await conn.execute(text(sql), params)]
    has_more = len(rows) > query.limit
    rows = rows[: query.limit]
    total = None
    if query.include_total:
        count_params = {k: v for k, v in params.items() if not k.startswith("_")}
        total = (
            await conn.execute(
                text(f"SELECT count(*) FROM {collection.table} WHERE {where} AND {extra_where}"),
                count_params,
            )
        ).scalar_one()
    data = [to_view(r) for r in rows]
    return Page(
        data=data,
        limit=query.limit,
        after=query.after,
        order="DESC" if direction == "DESC" else "ASC",
        has_more=has_more,
        total_count=total,
    )


async def get_one(
    conn: AsyncConnection, collection: Collection, key: UUID
) -> Mapping[str, Any] | None:
    """One item of ``collection`` by its id (``id_column``), with the columns a page has;
    ``None`` when it does not exist or the tenant does not see it (ADR 0086)."""
    sql = f"SELECT {collection.columns} FROM {collection.table} WHERE {collection.id_column} = :id"
    row = (await conn.execute(cached_text(sql), {"id": key})).first()
    return None if row is None else dict(row._mapping)
