"""``field=value`` and ``field__op=value`` parameters → one ``And`` of ``Cmp`` leaves.

Values stay strings (the owning service knows each field's type from its allowlist and
converts); ``__in``/``__nin`` take comma-separated lists; a truncated timestamp
``20161130T162512Z`` is normalised to RFC 3339 (docs/api.md, "JSON").
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from outpost_contracts.errors import validation_error
from outpost_contracts.query import MAX_NODES, And, Cmp, CmpOp, Node, Scalar

OPERATORS: dict[str, CmpOp] = {
    "eq": "eq",
    "neq": "ne",
    "lt": "lt",
    "lte": "le",
    "gt": "gt",
    "gte": "ge",
    "in": "in",
    "nin": "nin",
}

_FIELD = re.compile(r"^[A-Za-z][A-Za-z0-9_.]*$")
_TRUNCATED_TS = re.compile(r"^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$")


def normalise_value(value: str) -> str:
    m = _TRUNCATED_TS.fullmatch(value)
    if m is None:
        return value
    y, mo, d, h, mi, s = m.groups()
    return f"{y}-{mo}-{d}T{h}:{mi}:{s}Z"


def compile_field_filter(name: str, value: str) -> Cmp:
    field, sep, op_name = name.partition("__")
    if sep and op_name not in OPERATORS:
        raise validation_error(
            name, f"unknown operator {op_name!r}; allowed: {', '.join(OPERATORS)}"
        )
    if not _FIELD.fullmatch(field) or "__" in field:
        raise validation_error(name, "not a field name")
    op = OPERATORS[op_name] if sep else "eq"
    if op in ("in", "nin"):
        items: list[Scalar] = [normalise_value(v.strip()) for v in value.split(",") if v.strip()]
        if not items:
            raise validation_error(name, "needs a comma-separated list of values")
        return Cmp(field=field, op=op, value=items)
    return Cmp(field=field, op=op, value=normalise_value(value))


def compile_field_filters(params: Sequence[tuple[str, str]]) -> Node | None:
    leaves: list[Node] = [compile_field_filter(name, value) for name, value in params]
    if not leaves:
        return None
    if len(leaves) + 1 > MAX_NODES:
        raise validation_error("filter", f"at most {MAX_NODES - 1} filters are allowed")
    if len(leaves) == 1:
        return leaves[0]
    return And(items=leaves)
