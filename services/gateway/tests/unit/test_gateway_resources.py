"""The resource-group table (domain/resources.py): one entry gives a group its routes, their
policies and rate categories, and its handlers; a route declared twice, or an operation whose
request lacks what the gateway fills in, is refused when the table is built."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from uuid import UUID, uuid4

import msgspec
import pytest
from gateway_testkit import FakeBackend
from litestar import Litestar
from litestar.di import Provide
from litestar.testing import TestClient

from outpost_contracts.base import Empty, Request
from outpost_contracts.envelope import Principal, PrincipalKind, RequestContext
from outpost_contracts.query import Page
from outpost_contracts.registry import (
    CREATE_SITE,
    DELETE_SITE,
    GET_SITE,
    LIST_SITES,
    UPDATE_SITE,
    SiteView,
)
from outpost_contracts.rpc import Operation
from outpost_gateway.domain.policy import (
    HANDWRITTEN_POLICIES,
    OPERATOR,
    ROUTE_POLICIES,
    group_policies,
    rate_category,
)
from outpost_gateway.domain.ratelimit import Category
from outpost_gateway.domain.resources import RESOURCE_GROUPS, Doc, ResourceGroup, Route, group_at
from outpost_gateway.entrypoints.params import provide_listing
from outpost_gateway.entrypoints.resources import handlers_of

pytestmark = pytest.mark.unit
T0 = datetime(2026, 1, 1, tzinfo=UTC)
GROUP_ROUTES = [(group, route) for group in RESOURCE_GROUPS for route in group.routes()]


@pytest.mark.parametrize(
    ("group", "route"), GROUP_ROUTES, ids=[f"{r.method} {r.path}" for _, r in GROUP_ROUTES]
)
def test_each_route_of_a_group_has_its_groups_policy_and_category(
    group: ResourceGroup, route: Route
) -> None:
    method, path = route.method, route.path
    expected = OPERATOR if group.scope is None else f"{group.scope}:{route.access}"
    assert ROUTE_POLICIES[(method, path)] == expected
    assert (method, path) not in HANDWRITTEN_POLICIES
    assert rate_category(method, path) is route.category


def test_the_verbs_read_and_write_as_their_methods_say() -> None:
    sites = {
        (r.verb, r.method, r.path, r.access, r.category) for r in group_at("/api/v1/sites").routes()
    }
    assert sites == {
        ("create", "POST", "/api/v1/sites", "write", Category.WRITE),
        ("list", "GET", "/api/v1/sites", "read", Category.LIST),
        ("get", "GET", "/api/v1/sites/{id}", "read", Category.SINGLE),
        ("update", "PATCH", "/api/v1/sites/{id}", "write", Category.WRITE),
        ("delete", "DELETE", "/api/v1/sites/{id}", "write", Category.WRITE),
    }


def test_a_route_declared_twice_is_refused() -> None:
    sites = group_at("/api/v1/sites")
    with pytest.raises(ValueError, match="two policies"):
        group_policies((sites, sites))


class UpdateWithoutVersion(Request, kw_only=True, frozen=True):
    id: UUID
    patch: dict[str, str]


def test_an_operation_whose_request_lacks_what_the_gateway_fills_is_refused() -> None:
    update = Operation("devices", "UpdateThing", UpdateWithoutVersion, SiteView)
    with pytest.raises(TypeError, match="expected_version"):
        ResourceGroup(path="/api/v1/things", one="thing", many="things", scope="x", update=update)
    with pytest.raises(TypeError, match="no verb"):
        ResourceGroup(
            path="/api/v1/things",
            one="thing",
            many="things",
            scope="x",
            get=GET_SITE,
            docs={"remove": Doc(summary="?")},
        )


# --- a new group: one entry, its five handlers ---------------------------------------------

PLACES = ResourceGroup(
    path="/api/v1/places",
    one="place",
    many="places",
    scope="places",
    create=CREATE_SITE,
    list=LIST_SITES,
    get=GET_SITE,
    update=UPDATE_SITE,
    delete=DELETE_SITE,
    docs={"delete": Doc(summary="Delete a place")},
)
CTX = RequestContext(
    request_id="0" * 32,
    org_id=uuid4(),
    principal=Principal(kind=PrincipalKind.API_KEY, id=uuid4(), org_id=uuid4()),
)


def place(version: int = 1) -> SiteView:
    return SiteView(id=uuid4(), name="north", created_at=T0, updated_at=T0, version=version)


@pytest.fixture
def served() -> Iterator[tuple[TestClient[Litestar], FakeBackend]]:
    """The group's handlers alone, with the app's dependencies (no policy check: the group is
    not in the gateway's table)."""
    backend = FakeBackend()
    app = Litestar(
        route_handlers=handlers_of(PLACES),
        dependencies={
            "ctx": Provide(lambda: CTX, sync_to_thread=False),
            "backend": Provide(lambda: backend, sync_to_thread=False),
            "listing": Provide(provide_listing, sync_to_thread=False),
        },
    )
    with TestClient(app) as client:
        yield client, backend


def test_a_new_group_is_served_and_documented_from_its_entry(
    served: tuple[TestClient[Litestar], FakeBackend],
) -> None:
    client, backend = served
    one = place(version=3)
    backend.on(CREATE_SITE, one).on(GET_SITE, one).on(UPDATE_SITE, place(version=4))
    backend.on(DELETE_SITE, Empty())
    backend.on(LIST_SITES, Page(data=[one], limit=1, after=None, order="ASC", has_more=True))

    assert client.post("/api/v1/places", json={"name": "north"}).status_code == 201
    assert backend.last.body == msgspec.convert({"name": "north"}, CREATE_SITE.request)

    listed = client.get("/api/v1/places", params={"limit": "1", "$select": "name"}).json()
    assert listed["data"] == [{"id": str(one.id), "name": "north"}] and listed["hasMore"]
    assert backend.last.body.query.limit == 1
    assert client.get("/api/v1/places", params={"limit": "0"}).status_code == 400

    got = client.get(f"/api/v1/places/{one.id}")
    assert got.headers["ETag"] == '"3"' and backend.last.body.id == one.id

    changed = client.patch(
        f"/api/v1/places/{one.id}", json={"name": "n"}, headers={"If-Match": '"3"'}
    )
    assert changed.headers["ETag"] == '"4"'
    assert backend.last.body.expected_version == 3 and backend.last.body.patch.name == "n"

    assert client.delete(f"/api/v1/places/{one.id}", headers={"If-Match": '"4"'}).status_code == 204
    assert backend.last.body.expected_version == 4

    doc = client.get("/schema/openapi.json").json()
    ids = {
        (method.upper(), path): op["operationId"]
        for path, item in doc["paths"].items()
        for method, op in item.items()
    }
    assert ids == {
        ("POST", "/api/v1/places"): "ApiV1PlacesCreatePlace",
        ("GET", "/api/v1/places"): "ApiV1PlacesListPlaces",
        ("GET", "/api/v1/places/{id}"): "ApiV1PlacesIdGetPlace",
        ("PATCH", "/api/v1/places/{id}"): "ApiV1PlacesIdUpdatePlace",
        ("DELETE", "/api/v1/places/{id}"): "ApiV1PlacesIdDeletePlace",
    }
    listing = {p["name"] for p in doc["paths"]["/api/v1/places"]["get"]["parameters"]}
    assert listing == {"limit", "after", "order", "include"}
    assert doc["paths"]["/api/v1/places/{id}"]["delete"]["summary"] == "Delete a place"
