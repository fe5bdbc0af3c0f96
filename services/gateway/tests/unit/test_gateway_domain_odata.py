"""OData query options: the $filter grammar, the other options, their merge with field
filters, $select/$expand shapes and key predicates."""

from __future__ import annotations

import pytest

from outpost_contracts.errors import ErrorType, OutpostError
from outpost_contracts.query import (
    MAX_LIMIT,
    AllOf,
    And,
    AnyOf,
    Cmp,
    Node,
    Not,
    Or,
    OrderBy,
)
from outpost_gateway.domain.query import (
    Resource,
    Shape,
    parse_list_query,
    parse_list_request,
    parse_single_request,
)
from outpost_gateway.domain.query.keys import parse_key
from outpost_gateway.domain.query.odata import (
    ExpandItem,
    parse_expand,
    parse_filter,
    parse_orderby,
)
from outpost_gateway.domain.query.shape import prune

pytestmark = pytest.mark.unit


def eq(field: str, value: object) -> Cmp:
    return Cmp(field=field, op="eq", value=value)  # type: ignore[arg-type]


def _error(call: object, *args: object, **kwargs: object) -> tuple[str, str]:
    with pytest.raises(OutpostError) as exc:
        call(*args, **kwargs)  # type: ignore[operator]
    assert exc.value.type is ErrorType.VALIDATION_ERROR
    return exc.value.fields[0].name, exc.value.fields[0].message


# --- $filter: the grammar --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "tree"),
    [
        ("name eq 'gw-1'", eq("name", "gw-1")),
        ("name ne 'a'", Cmp(field="name", op="ne", value="a")),
        ("version gt 1", Cmp(field="version", op="gt", value=1)),
        ("version ge -2", Cmp(field="version", op="ge", value=-2)),
        ("ratio lt 1.5", Cmp(field="ratio", op="lt", value=1.5)),
        ("ratio le 2e3", Cmp(field="ratio", op="le", value=2000.0)),
        ("active eq true", eq("active", True)),
        ("active eq false", eq("active", False)),
        ("deviceType eq null", eq("deviceType", None)),
        ("name eq 'o''brien'", eq("name", "o'brien")),
        ("name eq ''", eq("name", "")),
        ("name eq 'a and b or c'", eq("name", "a and b or c")),
        (
            "createdAt ge 2026-01-01T00:00:00Z",
            Cmp(field="createdAt", op="ge", value="2026-01-01T00:00:00Z"),
        ),
        (
            "createdAt lt 2026-01-01T00:00:00.123+02:00",
            Cmp(field="createdAt", op="lt", value="2026-01-01T00:00:00.123+02:00"),
        ),
        (
            "siteId eq 0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b",
            eq("siteId", "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"),
        ),
        (
            "siteId eq ab90a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b",
            eq("siteId", "ab90a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"),
        ),
        (
            "status in ('ACTIVE','REGISTERED')",
            Cmp(field="status", op="in", value=["ACTIVE", "REGISTERED"]),
        ),
        ("version in (1, 2 ,3)", Cmp(field="version", op="in", value=[1, 2, 3])),
        ("contains(name,'north')", Cmp(field="name", op="contains", value="north")),
        ("startswith( name , 'gw' )", Cmp(field="name", op="startswith", value="gw")),
        ("endswith(name,'-01')", Cmp(field="name", op="endswith", value="-01")),
        ("  (  name eq 'a'  )  ", eq("name", "a")),
        ("((name eq 'a'))", eq("name", "a")),
    ],
)
def test_leaves(text: str, tree: Node) -> None:
    assert parse_filter(text) == tree


A, B, C, D = eq("a", 1), eq("b", 2), eq("c", 3), eq("d", 4)


@pytest.mark.parametrize(
    ("text", "tree"),
    [
        ("a eq 1 or b eq 2 and c eq 3", Or(items=[A, And(items=[B, C])])),
        ("a eq 1 and b eq 2 or c eq 3", Or(items=[And(items=[A, B]), C])),
        ("(a eq 1 or b eq 2) and c eq 3", And(items=[Or(items=[A, B]), C])),
        ("a eq 1 and b eq 2 and c eq 3", And(items=[A, B, C])),
        ("a eq 1 or b eq 2 or c eq 3 or d eq 4", Or(items=[A, B, C, D])),
        ("a eq 1 and (b eq 2 and c eq 3)", And(items=[A, B, C])),
        ("not a eq 1", Not(item=A)),
        ("not a eq 1 and b eq 2", And(items=[Not(item=A), B])),
        ("not (a eq 1 and b eq 2)", Not(item=And(items=[A, B]))),
        ("not(a eq 1)", Not(item=A)),
        ("not not a eq 1", Not(item=Not(item=A))),
        (
            "not contains(name,'x') or a eq 1",
            Or(items=[Not(item=Cmp(field="name", op="contains", value="x")), A]),
        ),
        (
            "a eq 1 and (b eq 2 or (c eq 3 and not d eq 4))",
            And(items=[A, Or(items=[B, And(items=[C, Not(item=D)])])]),
        ),
    ],
)
def test_precedence_and_nesting(text: str, tree: Node) -> None:
    assert parse_filter(text) == tree


@pytest.mark.parametrize(
    ("text", "tree"),
    [
        (
            "tags/any(t:t/key eq 'site' and t/value eq 'north')",
            AnyOf(relation="tags", predicate=And(items=[eq("key", "site"), eq("value", "north")])),
        ),
        ("tags/any()", AnyOf(relation="tags")),
        ("tags/any(x:true)", AnyOf(relation="tags")),
        ("tags/any( t : t/key eq 'a' )", AnyOf(relation="tags", predicate=eq("key", "a"))),
        (
            "tags/all(t:t/key ne 'x' or startswith(t/value,'n'))",
            AllOf(
                relation="tags",
                predicate=Or(
                    items=[
                        Cmp(field="key", op="ne", value="x"),
                        Cmp(field="value", op="startswith", value="n"),
                    ]
                ),
            ),
        ),
        ("not tags/any()", Not(item=AnyOf(relation="tags"))),
        (
            "name eq 'a' and tags/any(t: t/key in ('x','y'))",
            And(
                items=[
                    eq("name", "a"),
                    AnyOf(relation="tags", predicate=Cmp(field="key", op="in", value=["x", "y"])),
                ]
            ),
        ),
        (
            "tags/any(t:t/key eq 'a') or tags/all(u:not (u/key eq 'b'))",
            Or(
                items=[
                    AnyOf(relation="tags", predicate=eq("key", "a")),
                    AllOf(relation="tags", predicate=Not(item=eq("key", "b"))),
                ]
            ),
        ),
    ],
)
def test_lambdas(text: str, tree: Node) -> None:
    assert parse_filter(text) == tree


@pytest.mark.parametrize(
    ("text", "position", "words"),
    [
        ("", 0, "required"),
        ("   ", 3, "required"),
        ("name", 4, "expected an operator"),
        ("name eq", 7, "expected a value"),
        ("name eq 'x", 8, "unterminated string"),
        ("name like 'x'", 5, "unknown operator 'like'"),
        ("name eq 'x' xor b eq 1", 12, "unexpected 'xor'"),
        ("name eq 'x' and", 15, "expected a field"),
        ("and name eq 'x'", 4, "unknown operator 'name'"),
        ("(name eq 'x'", 12, "expected ')'"),
        ("name eq 'x')", 11, "unexpected ')'"),
        ("name eq 'x' #", 12, "unexpected character '#'"),
        ("tolower(name) eq 'x'", 0, "unknown function 'tolower'"),
        ("substringof('x',name)", 0, "unknown function 'substringof'"),
        ("contains(name,1)", 0, "needs a text value"),
        ("contains(name 'x')", 14, "expected ','"),
        ("name in 'x'", 8, "expected '('"),
        ("name in ()", 9, "expected a value"),
        ("name eq other", 8, "expected a value"),
        ("tags/key eq 'x'", 0, "navigates a relation"),
        ("tags/any(t: key eq 'x')", 12, "name fields through its variable"),
        ("tags/any(t: t/key/x eq 'x')", 14, "nested navigation"),
        ("tags/any(t: t/x/any(u:u/y eq 1))", 14, "nested navigation"),
        ("tags/any(t: other/any(u:u/y eq 1))", 12, "a lambda inside a lambda"),
        ("tags/all()", 5, "all() needs a predicate"),
        ("tags/all(t:true)", 5, "give a predicate"),
        ("tags/any(t t/key eq 'x')", 9, "expected 'variable:'"),
        ("tags/any(t:t/key eq 'x'", 23, "expected ')'"),
        ("(" * 9 + "a eq 1" + ")" * 9, 8, "nested deeper than 8"),
        ("not " * 9 + "a eq 1", 32, "nested deeper than 8"),
    ],
)
def test_syntax_errors_name_filter_and_position(text: str, position: int, words: str) -> None:
    name, message = _error(parse_filter, text)
    assert name == "$filter"
    assert message.startswith(f"at position {position}:"), message
    assert words in message, message


def test_size_limits() -> None:
    many = " or ".join(f"a eq {i}" for i in range(64))
    name, message = _error(parse_filter, many)
    assert (name, message) == ("$filter", "more than 64 conditions")
    assert _error(parse_filter, "a eq '" + "x" * 4000 + "'")[0] == "$filter"
    # 63 leaves under one Or is 64 nodes: the limit itself is allowed
    assert isinstance(parse_filter(" or ".join(f"a eq {i}" for i in range(63))), Or)


# --- the other options -----------------------------------------------------------------------


def test_orderby() -> None:
    assert parse_orderby("name desc, createdAt,id ASC") == [
        OrderBy(field="name", desc=True),
        OrderBy(field="createdAt"),
        OrderBy(field="id"),
    ]


@pytest.mark.parametrize("text", ["", "name sideways", "name desc extra", "1name", "a,a desc"])
def test_bad_orderby(text: str) -> None:
    assert _error(parse_orderby, text)[0] == "$orderby"


def test_expand() -> None:
    assert parse_expand("tags") == [ExpandItem(name="tags")]
    assert parse_expand("tags($select=key), site($select=id,name;$expand=region)") == [
        ExpandItem(name="tags", select=["key"]),
        ExpandItem(name="site", select=["id", "name"], expand=[ExpandItem(name="region")]),
    ]


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("tags(", "unbalanced '('"),
        ("tags)", "unbalanced ')'"),
        ("tags($top=1)", "unsupported option '$top'"),
        ("tags(select)", "expected $select"),
        ("a($expand=b($expand=c))", "nested deeper than 2"),
        ("tags junk", "unexpected"),
        (",tags", "expected a relation name"),
    ],
)
def test_bad_expand(text: str, words: str) -> None:
    name, message = _error(parse_expand, text)
    assert name == "$expand" and words in message and "at position" in message


def test_list_options_map_onto_the_list_query() -> None:
    q = parse_list_query(
        [
            ("$filter", "name eq 'a'"),
            ("$orderby", "name desc"),
            ("$top", "20"),
            ("$skip", "40"),
            ("$count", "true"),
            ("$select", "name,status"),
            ("$expand", "tags"),
        ]
    )
    assert q.filter == eq("name", "a")
    assert q.order_by == [OrderBy(field="name", desc=True)]
    assert (q.limit, q.skip, q.include_total) == (20, 40, True)
    assert (q.select, q.expand) == (["name", "status"], ["tags"])
    assert parse_list_query([("$count", "false")]).include_total is False


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ([("$top", "0")], "$top"),
        ([("$top", str(MAX_LIMIT + 1))], "$top"),
        ([("$top", "ten")], "$top"),
        ([("$top", "5"), ("limit", "5")], "$top"),
        ([("$skip", "-1")], "$skip"),
        ([("$skip", "1000001")], "$skip"),
        ([("$count", "yes")], "$count"),
        ([("$filter", "a eq 1"), ("$filter", "b eq 1")], "$filter"),
        ([("$search", "x")], "$search"),
        ([("$select", "a,,b")], "$select"),
        ([("$select", "")], "$select"),
    ],
)
def test_bad_options_name_the_parameter(params: list[tuple[str, str]], field: str) -> None:
    assert _error(parse_list_query, params)[0] == field


# --- field filters and $filter together -------------------------------------------------------


def test_field_filters_and_odata_are_anded() -> None:
    q = parse_list_query([("status", "ACTIVE"), ("$filter", "name eq 'a' or name eq 'b'")])
    assert q.filter == And(
        items=[eq("status", "ACTIVE"), Or(items=[eq("name", "a"), eq("name", "b")])]
    )


def test_and_filters_are_flattened_when_merged() -> None:
    q = parse_list_query(
        [("status", "ACTIVE"), ("name__neq", "x"), ("$filter", "a eq 1 and b eq 2")]
    )
    assert q.filter == And(
        items=[eq("status", "ACTIVE"), Cmp(field="name", op="ne", value="x"), A, B]
    )


def test_only_one_style_is_unchanged() -> None:
    assert parse_list_query([("$filter", "a eq 1")]).filter == A
    assert parse_list_query([("a", "1")]).filter == eq("a", "1")


def test_merged_filters_respect_the_size_limit() -> None:
    fields = [(f"f{i}", "x") for i in range(40)]
    odata = " or ".join(f"a eq {i}" for i in range(30))
    name, _ = _error(parse_list_query, [*fields, ("$filter", odata)])
    assert name == "$filter"


# --- $select and $expand: shapes ---------------------------------------------------------------

TAG = Resource(fields=frozenset({"key", "value"}))
DEVICE = Resource(fields=frozenset({"id", "name", "status", "tags"}), relations={"tags": TAG})
ROW = {
    "id": "1",
    "name": "gw",
    "status": "ACTIVE",
    "tags": [{"key": "site", "value": "north"}],
}


def test_select_prunes_and_keeps_the_id() -> None:
    _, shape = parse_list_request([("$select", "name")], DEVICE)
    assert prune(ROW, shape) == {"id": "1", "name": "gw"}
    assert not shape.is_full


def test_no_select_is_the_full_object() -> None:
    _, shape = parse_list_request([], DEVICE)
    assert shape.is_full and prune(ROW, shape) == ROW


def test_expand_tags_is_a_no_op_and_nested_select_prunes_items() -> None:
    _, shape = parse_list_request([("$expand", "tags")], DEVICE)
    assert shape.is_full
    _, shape = parse_list_request([("$select", "name"), ("$expand", "tags($select=key)")], DEVICE)
    assert prune(ROW, shape) == {"id": "1", "name": "gw", "tags": [{"key": "site"}]}


@pytest.mark.parametrize(
    ("params", "field", "words"),
    [
        ([("$select", "name,colour")], "$select", "unknown field 'colour'"),
        ([("$expand", "site")], "$expand", "'site' cannot be expanded; expandable here: tags"),
        ([("$expand", "tags($select=colour)")], "$expand", "unknown field 'colour'"),
        ([("$expand", "tags($expand=owner)")], "$expand", "'owner' cannot be expanded"),
    ],
)
def test_unknown_shape_names_are_refused(
    params: list[tuple[str, str]], field: str, words: str
) -> None:
    name, message = _error(parse_list_request, params, DEVICE)
    assert name == field and words in message


def test_single_resources_take_only_select_and_expand() -> None:
    assert parse_single_request([("$select", "name")], DEVICE) == Shape(select=["name"])
    assert _error(parse_single_request, [("$filter", "a eq 1")], DEVICE)[0] == "$filter"
    assert _error(parse_single_request, [("$top", "1")], DEVICE)[0] == "$top"
    assert _error(parse_single_request, [("name", "x")], DEVICE)[0] == "name"


# --- key predicates ---------------------------------------------------------------------------

UUID_TEXT = "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("name='warehouse-gateway-01'", ("name", "warehouse-gateway-01")),
        ("name = 'o''brien'", ("name", "o'brien")),
        (UUID_TEXT, ("id", UUID_TEXT)),
        (f"'{UUID_TEXT}'", ("id", UUID_TEXT)),
        (f"id={UUID_TEXT}", ("id", UUID_TEXT)),
        ("42", ("id", "42")),
    ],
)
def test_keys(text: str, key: tuple[str, str]) -> None:
    assert parse_key(text, alternate=("name",)) == key


@pytest.mark.parametrize("text", ["", "colour='x'", "name=x", "name='a',id=1", "name='x"])
def test_bad_keys(text: str) -> None:
    assert _error(parse_key, text, alternate=("name",))[0] == "key"
