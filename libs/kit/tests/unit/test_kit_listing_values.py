"""Filter values against the allowlist's field types (docs/design/reliability.md ``edge-fuzz``;
decision 77): a value a column cannot hold is a ``validation_error`` naming the field, never a
number Postgres refuses (a 500) nor a silently different comparison (1e999 as NULL, 3.5 as 3)."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from outpost_contracts.errors import ErrorType, OutpostError
from outpost_contracts.query import Cmp
from outpost_kit.db.listing import Collection, Field, compile_filter

pytestmark = pytest.mark.unit

RANGES = {"int": (-(2**63), 2**63 - 1), "int32": (-(2**31), 2**31 - 1)}
QUARANTINE = Collection(
    table="q",
    columns="*",
    fields={
        "streamSeq": Field("stream_seq", "int"),
        "readingIndex": Field("reading_index", "int32"),
        "latencyMs": Field("latency_ms", "float"),
    },
)
TYPES = {"streamSeq": "int", "readingIndex": "int32", "latencyMs": "float"}
VALUES = st.one_of(
    st.integers(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(),
    st.booleans(),
    st.text(max_size=30),
    st.integers().map(str),
    st.floats().map(repr),
    st.sampled_from(["inf", "-Infinity", "nan", "1e308", "1e999", "9" * 5000, " 12 ", "1_000"]),
)


def compiled(field: str, op: str, value: Any) -> dict[str, Any] | None:
    """The SQL parameters, or None when refused as a validation_error naming ``field``."""
    try:
        _, params = compile_filter(QUARANTINE, Cmp(field=field, op=op, value=value))  # type: ignore[arg-type]
    except OutpostError as exc:
        refused = exc
    else:
        return params
    assert refused.type == ErrorType.VALIDATION_ERROR, refused
    assert [f.name for f in refused.fields] == [field]
    return None


@settings(max_examples=500, deadline=None)
@given(
    field=st.sampled_from(sorted(TYPES)),
    op=st.sampled_from(["eq", "ne", "gt", "ge", "lt", "le", "in", "nin"]),
    value=st.one_of(VALUES, st.lists(VALUES, min_size=1, max_size=3)),
)
@example(field="streamSeq", op="gt", value=1e308)
@example(field="streamSeq", op="eq", value=99999999999999999999999)
@example(field="streamSeq", op="eq", value=math.inf)
@example(field="latencyMs", op="eq", value="nan")
@example(field="readingIndex", op="eq", value=2**31)
def test_every_value_reaching_sql_fits_its_column(field: str, op: str, value: Any) -> None:
    params = compiled(field, op, value)
    if params is None:
        return
    for param in params.values():
        for v in param if isinstance(param, list) else [param]:
            if TYPES[field] == "float":
                assert isinstance(v, float) and math.isfinite(v)
            else:
                low, high = RANGES[TYPES[field]]
                assert type(v) is int and low <= v <= high


def test_the_findings_are_validation_errors() -> None:
    """``streamSeq gt 1e308`` and ``eq 99999999999999999999999`` overflowed bigint (500);
    ``eq 1e999`` arrived as null (inf has no JSON) — the gateway refuses that one now, and
    here an infinity or NaN is refused too; ``3.5`` no longer compares as 3."""
    for value in (1e308, 99999999999999999999999, -(2**63) - 1, math.inf, math.nan, 3.5, True):
        assert compiled("streamSeq", "gt", value) is None, value
    assert compiled("readingIndex", "eq", 2**31) is None
    for value in ("inf", "nan", math.inf, False):
        assert compiled("latencyMs", "eq", value) is None, value
    assert compiled("streamSeq", "eq", 2**63 - 1) == {"p0": 2**63 - 1}
    assert compiled("streamSeq", "eq", "42") == {"p0": 42}
    assert compiled("streamSeq", "in", ["1", 2, 3.0]) == {"p0": [1, 2, 3]}
    assert compiled("latencyMs", "lt", "1.5") == {"p0": 1.5}
