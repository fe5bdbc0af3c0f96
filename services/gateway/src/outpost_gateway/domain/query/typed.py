"""Query parameters → a typed request contract (for routes whose request names its
parameters, such as ``ListReadings``), with errors naming the parameter."""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from typing import TypeVar

import msgspec

from outpost_contracts.errors import validation_error
from outpost_gateway.domain.query.field_filters import normalise_value

T = TypeVar("T")

_AT_PATH = re.compile(r" - at `\$\.?([^`]*)`$")
_NAMED = re.compile(r"field `([^`]+)`")


def parse_typed_query(
    params: Sequence[tuple[str, str]], type_: type[T], *, drop: Collection[str] = ()
) -> T:
    values: dict[str, str] = {}
    for name, value in params:
        if name in drop:
            continue
        if name in values:
            raise validation_error(name, "may be given only once")
        values[name] = normalise_value(value)
    try:
        return msgspec.convert(values, type_, strict=False)
    except msgspec.ValidationError as exc:
        text = str(exc)
        at = _AT_PATH.search(text)
        named = _NAMED.search(text)
        field = (at.group(1) if at else "") or (named.group(1) if named else "query")
        message = _AT_PATH.sub("", text)
        raise validation_error(field, message) from None
