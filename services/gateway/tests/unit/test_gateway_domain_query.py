from __future__ import annotations

from uuid import uuid4

import pytest

from outpost_contracts.errors import ErrorType, OutpostError
from outpost_contracts.query import And, Cmp, ListQuery
from outpost_contracts.readings import GetAggregates, ListReadings
from outpost_gateway.domain.query import parse_list_query
from outpost_gateway.domain.query.typed import parse_typed_query

pytestmark = pytest.mark.unit


def _field_error(params: list[tuple[str, str]]) -> str:
    with pytest.raises(OutpostError) as exc:
        parse_list_query(params)
    assert exc.value.type is ErrorType.VALIDATION_ERROR
    return exc.value.fields[0].name


def test_defaults() -> None:
    assert parse_list_query([]) == ListQuery()


def test_paging_parameters() -> None:
    q = parse_list_query(
        [("limit", "1000"), ("after", "abc"), ("order", "desc"), ("include", "totalCount")]
    )
    assert (q.limit, q.after, q.order, q.include_total, q.filter) == (
        1000,
        "abc",
        "DESC",
        True,
        None,
    )


@pytest.mark.parametrize("limit", ["0", "1001", "-5", "ten", "1.5"])
def test_limit_must_be_1_to_1000(limit: str) -> None:
    assert _field_error([("limit", limit)]) == "limit"


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ([("order", "sideways")], "order"),
        ([("include", "everything")], "include"),
        ([("limit", "1"), ("limit", "2")], "limit"),
        ([("name__like", "x")], "name__like"),
        ([("name__", "x")], "name__"),
        ([("__eq", "x")], "__eq"),
        ([("bad-field", "x")], "bad-field"),
        ([("status__in", ",,")], "status__in"),
        ([("$filter", "name eq")], "$filter"),
        ([("$format", "json")], "$format"),
    ],
)
def test_bad_parameters_name_the_field(params: list[tuple[str, str]], field: str) -> None:
    assert _field_error(params) == field


def test_a_single_filter_is_a_comparison() -> None:
    assert parse_list_query([("name", "gw-1")]).filter == Cmp(field="name", op="eq", value="gw-1")


def test_every_operator_compiles_into_one_and() -> None:
    q = parse_list_query(
        [
            ("limit", "10"),
            ("name__eq", "a"),
            ("name__neq", "b"),
            ("createdAt__lt", "20161130T162512Z"),
            ("createdAt__lte", "2016-11-30T16:25:12Z"),
            ("version__gt", "1"),
            ("version__gte", "2"),
            ("status__in", "ACTIVE, REGISTERED"),
            ("status__nin", "DECOMMISSIONED"),
        ]
    )
    assert q.limit == 10
    assert q.filter == And(
        items=[
            Cmp(field="name", op="eq", value="a"),
            Cmp(field="name", op="ne", value="b"),
            Cmp(field="createdAt", op="lt", value="2016-11-30T16:25:12Z"),
            Cmp(field="createdAt", op="le", value="2016-11-30T16:25:12Z"),
            Cmp(field="version", op="gt", value="1"),
            Cmp(field="version", op="ge", value="2"),
            Cmp(field="status", op="in", value=["ACTIVE", "REGISTERED"]),
            Cmp(field="status", op="nin", value=["DECOMMISSIONED"]),
        ]
    )


def test_too_many_filters_are_refused() -> None:
    assert _field_error([(f"f{i}", "x") for i in range(100)]) == "filter"


def test_typed_queries_convert_and_name_bad_parameters() -> None:
    device = uuid4()
    q = parse_typed_query(
        [("deviceId", str(device)), ("from", "20240101T000000Z"), ("limit", "5")], ListReadings
    )
    assert q.device_id == device
    assert q.from_ is not None
    assert q.from_.year == 2024
    assert q.limit == 5
    for params, field in [
        ([("deviceId", "nope")], "deviceId"),
        ([("deviceId", str(device)), ("limit", "0")], "limit"),
        ([("deviceId", str(device)), ("bogus", "1")], "bogus"),
        ([("groupId", "nope")], "groupId"),
    ]:
        with pytest.raises(OutpostError) as exc:
            parse_typed_query(params, ListReadings)
        assert exc.value.fields[0].name == field, params
    # aggregates (decision 60): from, to and interval are required, fn and the zone checked
    window = [("deviceId", str(device)), ("from", "20240101T000000Z"), ("to", "20240102T000000Z")]
    agg = parse_typed_query([*window, ("interval", "1h"), ("fn", "min,max")], GetAggregates)
    assert agg.interval == "1h" and agg.fn == "min,max" and agg.timezone == "UTC"
    for params, field in [
        ([*window[:2], ("interval", "1h")], "to"),
        (window, "interval"),
        ([*window, ("interval", "2h")], "interval"),
        ([*window, ("interval", "1h"), ("fn", "median")], "fn"),
        ([*window, ("interval", "1h"), ("limit", "10081")], "limit"),
    ]:
        with pytest.raises(OutpostError) as exc:
            parse_typed_query(params, GetAggregates)
        assert exc.value.fields[0].name == field, params
