"""Property-based tests of the parsers at the gateway's edge (docs/design/reliability.md
``edge-fuzz``; decision 77): whatever a client sends, each parser answers with its result or a 4xx
in the error model, never another exception (which the app would turn into a 500).

The parsers are tested directly (no I/O): OData options and key predicates, field filters,
the paging parameters, signed download links, and the v0 ↔ v1 translation of queries and
bodies, the readings routes' typed query strings. Body decoding is tested through the app
(``TestClient``), where Litestar decodes."""

from __future__ import annotations

import json
import string
from collections.abc import Callable, Iterator
from typing import Any
from uuid import UUID, uuid4

import msgspec
import pytest
from gateway_testkit import NOW, FakeBackend, World, bearer, build_world
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from litestar import Litestar
from litestar.testing import TestClient

from outpost_contracts.devices import CREATE_DEVICE
from outpost_contracts.errors import AccessDenied, OutpostError
from outpost_contracts.query import ListQuery
from outpost_contracts.readings import GetAggregates, GetLatest, GetStats, ListReadings
from outpost_gateway.app.rate_limiter import MemoryStore
from outpost_gateway.bootstrap import create_app
from outpost_gateway.domain.downloads import DownloadSigner, SigningKey
from outpost_gateway.domain.query import parse_list_request, parse_single_request
from outpost_gateway.domain.query.keys import parse_key
from outpost_gateway.domain.query.odata import ODATA_PARAMS
from outpost_gateway.domain.query.shape import Resource
from outpost_gateway.domain.query.typed import parse_typed_query
from outpost_gateway.entrypoints.versions import (
    translate_query,
    translate_request,
    translate_response,
    v0,
)
from outpost_gateway.settings import GatewaySettings

pytestmark = pytest.mark.unit

# A slow, shared machine: no per-example deadline; enough examples to find the edges.
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def refused_or_ok(parse: Callable[[], Any]) -> Any:
    """``parse()``'s result, or None when it raised a 4xx ``OutpostError``; anything else
    fails the test."""
    try:
        return parse()
    except OutpostError as exc:
        refused = exc
    assert 400 <= refused.status < 500, (refused.type, refused.message)
    assert refused.message
    return None


# --- OData and field filters ----------------------------------------------------------------

# What a query parameter can hold: Litestar decodes the query string with replacement
# characters, so never a lone surrogate.
CHARS = st.characters(exclude_categories=("Cs",))
TEXT = st.text(CHARS)

# Pieces of the OData grammar, so that examples reach the parser's depths and not only its
# tokenizer; joined with text a client could send anywhere.
WORDS = st.sampled_from(
    [
        "name", "deviceType", "streamSeq", "tags", "t", "/", "any", "all", "(", ")", ",",
        ":", "eq", "ne", "gt", "ge", "lt", "le", "in", "and", "or", "not", "contains",
        "startswith", "endswith", "true", "false", "null", "'x'", "'it''s'", "'", "1",
        "-1", "1.5", "1e308", "1e999", "-1e999", "99999999999999999999999", "9" * 5000,
        "1" + "0" * 400, "2026-01-01T00:00:00Z", "20261130T162512Z",
        "0190c1a2-7d4e-7f00-8000-000000000001", "$select=id", ";", "=", "desc", "asc",
        "\x00", "\n", "²", "٣", "\ufffd",
    ]
)  # fmt: skip
EXPRESSIONS = st.one_of(
    TEXT,
    st.lists(st.one_of(WORDS, st.text(CHARS, max_size=3)), max_size=40).map(" ".join),
    st.lists(WORDS, max_size=40).map("".join),
)
PARAM_NAMES = st.one_of(
    st.sampled_from(sorted(ODATA_PARAMS)),
    st.sampled_from(["limit", "after", "order", "include", "name", "name__in", "x__gte"]),
    st.text(CHARS, max_size=12),
)
PARAMS = st.lists(st.tuples(PARAM_NAMES, EXPRESSIONS), max_size=6)
TAG = Resource(fields=frozenset({"key", "value"}))
DEVICE = Resource(fields=frozenset({"id", "name", "tags"}), relations={"tags": TAG})


@FUZZ
@given(PARAMS)
@example([("$filter", "streamSeq gt 1e308")])
@example([("$filter", "streamSeq eq 1e999")])
@example([("$filter", "streamSeq eq 99999999999999999999999")])
@example([("$top", "9" * 5000)])
@example([("$filter", "x eq " + "9" * 5000)])
@example([("name__in", ",,,")])
def test_list_queries_compile_or_are_refused(params: list[tuple[str, str]]) -> None:
    """Any list query string: a ``ListQuery`` that crosses the wire unchanged (a number
    never turns into null on the way), or a 4xx."""
    parsed = refused_or_ok(lambda: parse_list_request(params, DEVICE))
    if parsed is None:
        return
    query, _ = parsed
    wire = msgspec.json.encode(query)
    assert msgspec.json.decode(wire, type=ListQuery) == query


@FUZZ
@given(st.lists(st.tuples(PARAM_NAMES, EXPRESSIONS), max_size=3))
def test_single_resource_queries_parse_or_are_refused(params: list[tuple[str, str]]) -> None:
    refused_or_ok(lambda: parse_single_request(params, DEVICE))


@FUZZ
@given(EXPRESSIONS)
@example("name='" + "a" * 10 + "'")
@example("1e999")
def test_key_predicates_parse_or_are_refused(text: str) -> None:
    refused_or_ok(lambda: parse_key(text, ("name",)))


TYPED_NAMES = st.sampled_from(
    ["deviceId", "groupId", "siteId", "sensor", "from", "to", "limit", "after", "order",
     "interval", "fn", "timezone", "x"]
)  # fmt: skip
TYPED_VALUES = st.one_of(
    TEXT,
    WORDS,
    st.integers().map(str),
    st.sampled_from(["9" * 5000, "1e999", "temp\n", "20261130T162512Z", "avg,max"]),
)


@FUZZ
@given(
    st.sampled_from([ListReadings, GetAggregates, GetStats, GetLatest]),
    st.lists(st.tuples(TYPED_NAMES, TYPED_VALUES), max_size=6),
)
def test_typed_reading_queries_parse_or_are_refused(
    type_: type[Any], params: list[tuple[str, str]]
) -> None:
    """The readings routes' query strings, converted to their request contract."""
    refused_or_ok(lambda: parse_typed_query(params, type_))


# --- signed download links ------------------------------------------------------------------

SIGNER = DownloadSigner([SigningKey("k1", b"s" * 32)])
EXPORT, ORG = uuid4(), uuid4()
GOOD = dict(
    item.split("=", 1) for item in SIGNER.query(EXPORT, ORG, 1000.0).split("&")
)  # org, expires, kid, signature (URL-safe characters only)
LINK_PART = st.one_of(st.none(), st.text(max_size=60), st.text(string.printable, max_size=60))


@FUZZ
@given(
    org=st.one_of(LINK_PART, st.just(GOOD["org"])),
    expires=st.one_of(LINK_PART, st.just(GOOD["expires"]), st.just("9" * 5000)),
    kid=st.one_of(LINK_PART, st.just("k1")),
    signature=st.one_of(
        LINK_PART,
        st.just(GOOD["signature"]),
        st.just(GOOD["signature"][:-1] + "é"),
        st.just("\ud800" * 43),
    ),
)
def test_download_links_verify_or_are_refused(
    org: str | None, expires: str | None, kid: str | None, signature: str | None
) -> None:
    """Any query: the link's organization when every part is the signed one, else 403."""
    try:
        got = SIGNER.verify(
            EXPORT, org=org, expires=expires, kid=kid, signature=signature, now=1001.0
        )
    except AccessDenied:  # 403 access_denied
        return
    assert (org, expires, kid, signature) == (
        GOOD["org"],
        GOOD["expires"],
        "k1",
        GOOD["signature"],
    )
    assert got == UUID(GOOD["org"])


def test_a_signature_that_is_not_ascii_is_refused_not_raised() -> None:
    """``hmac.compare_digest`` raises TypeError on a str that is not ASCII: a 500 before."""
    with pytest.raises(AccessDenied):
        SIGNER.verify(EXPORT, **{**GOOD, "signature": "é" * 43}, now=1001.0)


# --- version translation (v0 ↔ v1) ----------------------------------------------------------

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=30,
)
DEVICE_LIKE = st.fixed_dictionaries(
    {},
    optional={
        "name": JSON,
        "type": JSON,
        "tags": st.one_of(JSON, st.dictionaries(st.text(max_size=5), JSON, max_size=3)),
        "deviceType": JSON,
        "object": st.one_of(st.just("list"), JSON),
        "data": st.one_of(JSON, st.lists(st.dictionaries(st.text(max_size=8), JSON))),
        "hasMore": JSON,
    },
)
PATHS = st.sampled_from(
    [
        "/api/v1/devices",
        "/api/v1/devices/1",
        "/api/v1/devices/by-key/name='d'",
        "/api/v1/devices(name='x')",
        "/api/v1/users",
    ]
)
METHODS = st.sampled_from(["GET", "POST", "PUT", "PATCH", "DELETE"])


@FUZZ
@given(
    METHODS,
    PATHS,
    st.one_of(
        st.binary(max_size=200), EXPRESSIONS.map(lambda s: s.encode("utf-8", "surrogatepass"))
    ),
)
@example("GET", "/api/v1/devices", b"%24filter=type%20eq%20'%ff'&type=%00")
def test_v0_queries_translate(method: str, path: str, query: bytes) -> None:
    out = translate_query([v0], method, path, query)
    assert isinstance(out, bytes)
    out.decode("latin-1")


@FUZZ
@given(METHODS, PATHS, st.one_of(JSON, DEVICE_LIKE), st.integers(200, 299))
def test_v0_bodies_translate_both_ways(method: str, path: str, body: Any, status: int) -> None:
    """Any JSON body goes up to v1 and any JSON response down to v0 as JSON."""
    up = translate_request([v0], method, path, body)
    down = translate_response([v0], method, path, status, body)
    json.dumps(up)
    json.dumps(down)


# --- body decoding, through the app ---------------------------------------------------------


class Env:
    def __init__(self, client: TestClient[Litestar], world: World) -> None:
        self.client, self.world = client, world


@pytest.fixture(scope="module")
def env() -> Iterator[Env]:
    world = build_world()
    backend = FakeBackend()
    backend.on(CREATE_DEVICE, OutpostError("not reached in these tests"))
    app = create_app(
        GatewaySettings(), backend, world.cache, clock=lambda: NOW, store=MemoryStore()
    )
    with TestClient(app, raise_server_exceptions=False) as client:
        yield Env(client, world)


def deep(levels: int) -> bytes:
    return b"[" * levels + b"]" * levels


def deep_attributes(levels: int) -> bytes:
    return b'{"name":"d","attributes":{"a":' + deep(levels) + b"}}"


def answers_in_the_error_model(resp: Any) -> None:
    assert resp.status_code < 500, (resp.status_code, resp.text[:300])
    if resp.status_code >= 400:
        body = resp.json()
        assert body["object"] == "error" and body["code"] == resp.status_code, body
        assert len(body["request_id"]) == 32


@pytest.mark.parametrize("version", ["v0", "v1"])
@pytest.mark.parametrize("body", [deep(100_000), deep_attributes(100_000)], ids=["array", "attr"])
def test_a_body_nested_100_000_deep_is_400(env: Env, version: str, body: bytes) -> None:
    """A RecursionError in the decoder (v1) or in the translation layer (v0): a 500 before."""
    resp = env.client.post(
        f"/api/{version}/devices",
        content=body,
        headers={**bearer(env.world.full), "Content-Type": "application/json"},
    )
    answers_in_the_error_model(resp)
    assert resp.status_code == 400 and resp.json()["type"] == "bad_request", resp.text


BODIES = st.one_of(
    st.binary(max_size=300),
    JSON.map(lambda v: json.dumps(v).encode()),
    DEVICE_LIKE.map(lambda v: json.dumps(v).encode()),
    st.integers(1, 3000).map(deep),
    st.integers(1, 3000).map(deep_attributes),
)


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(version=st.sampled_from(["v0", "v1"]), body=BODIES)
def test_any_body_is_answered_in_the_error_model(env: Env, version: str, body: bytes) -> None:
    """Whatever the body, a JSON content type on a route that decodes one: never a 5xx. (A
    body that decodes into a good device reaches the fake backend, which answers 500 on
    purpose; those are skipped.)"""
    resp = env.client.post(
        f"/api/{version}/devices",
        content=body,
        headers={**bearer(env.world.full), "Content-Type": "application/json"},
    )
    if resp.status_code == 500 and "not reached" in resp.text:
        return
    answers_in_the_error_model(resp)
