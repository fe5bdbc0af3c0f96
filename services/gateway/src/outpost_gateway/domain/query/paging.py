"""The parameters every list shares: ``limit``, ``after``, ``order``, ``include``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from outpost_contracts.errors import validation_error
from outpost_contracts.query import DEFAULT_LIMIT, MAX_LIMIT

PAGING_PARAMS = frozenset({"limit", "after", "order", "include"})
INCLUDABLE = frozenset({"totalCount"})


@dataclass(frozen=True, slots=True)
class Paging:
    limit: int = DEFAULT_LIMIT
    after: str | None = None
    order: Literal["ASC", "DESC"] = "ASC"
    include_total: bool = False


def _single(params: Sequence[tuple[str, str]], name: str) -> str | None:
    values = [v for k, v in params if k == name]
    if len(values) > 1:
        raise validation_error(name, "may be given only once")
    return values[0] if values else None


def parse_paging(params: Sequence[tuple[str, str]]) -> Paging:
    limit = DEFAULT_LIMIT
    raw_limit = _single(params, "limit")
    if raw_limit is not None:
        try:
            limit = int(raw_limit)
        except ValueError:
            raise validation_error("limit", "must be an integer") from None
        if not 1 <= limit <= MAX_LIMIT:
            raise validation_error("limit", f"must be between 1 and {MAX_LIMIT}")
    after = _single(params, "after")
    if after is not None and not after:
        raise validation_error("after", "must not be empty")
    order = (_single(params, "order") or "ASC").upper()
    if order not in ("ASC", "DESC"):
        raise validation_error("order", "must be ASC or DESC")
    include_total = False
    raw_include = _single(params, "include")
    if raw_include is not None:
        for item in (p.strip() for p in raw_include.split(",")):
            if item not in INCLUDABLE:
                raise validation_error("include", f"unknown value {item!r}; allowed: totalCount")
            include_total = True
    return Paging(
        limit=limit,
        after=after,
        order="DESC" if order == "DESC" else "ASC",
        include_total=include_total,
    )
