"""Collections end to end (docs/api.md, "Collections"): field filters and OData compile to the same
rows; OData-only options; alternate keys."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.e2e


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


# name suffix, deviceType, tags
FLEET: list[tuple[str, str | None, list[dict[str, str]]]] = [
    ("gw-north-01", "gateway", [{"key": "site", "value": "north"}, {"key": "tier", "value": "1"}]),
    ("gw-north-02", "gateway", [{"key": "site", "value": "north"}]),
    ("gw-south-01", "gateway", [{"key": "site", "value": "south"}]),
    ("pump-north-01", "pump", [{"key": "site", "value": "north"}, {"key": "tier", "value": "2"}]),
    ("pump-south-01", "pump", [{"key": "site", "value": "south"}, {"key": "tier", "value": "2"}]),
    ("pump-south-02", "pump", []),
    ("meter-east-01", "meter", [{"key": "site", "value": "east"}]),
    (
        "meter-east-02",
        "meter",
        [{"key": "site", "value": "east"}, {"key": "o'brien", "value": "x"}],
    ),
    ("meter-west-01", "meter", [{"key": "site", "value": "west"}]),
    ("sensor-a", None, []),
    ("sensor-b", "sensor", [{"key": "tier", "value": "1"}]),
    ("sensor-c", "sensor", [{"key": "site", "value": "north"}]),
]


@pytest.fixture(scope="module")
def fleet(platform: dict[str, Any], http: httpx.Client) -> tuple[str, str, dict[str, str]]:
    """(api key, name prefix, suffix → id) for twelve fresh devices."""
    key = platform["organization"]["apiKey"]
    prefix = f"col{uuid.uuid4().hex[:6]}"
    ids: dict[str, str] = {}
    for suffix, device_type, tags in FLEET:
        body: dict[str, Any] = {"name": f"{prefix}-{suffix}", "tags": tags}
        if device_type:
            body["deviceType"] = device_type
        r = http.post("/api/v1/devices", json=body, headers=bearer(key))
        assert r.status_code == 201, r.text
        ids[suffix] = r.json()["id"]
    return key, prefix, ids


def _list(http: httpx.Client, key: str, params: dict[str, Any]) -> dict[str, Any]:
    r = http.get("/api/v1/devices", params=params, headers=bearer(key))
    assert r.status_code == 200, r.text
    return dict(r.json())


def _ids(http: httpx.Client, key: str, prefix: str, params: dict[str, Any]) -> list[str]:
    """Ids of this test's devices matching ``params`` (scoped by the name prefix)."""
    scope = f"startswith(name,'{prefix}-')"
    merged = dict(params)
    merged["$filter"] = f"{scope} and ({params['$filter']})" if "$filter" in params else scope
    return [d["id"] for d in _list(http, key, merged)["data"]]


def _expect(ids: dict[str, str], *suffixes: str) -> list[str]:
    return [ids[s] for s in suffixes]


def test_both_styles_return_the_same_rows(
    fleet: tuple[str, str, dict[str, str]], http: httpx.Client
) -> None:
    key, prefix, ids = fleet
    names = [f"{prefix}-gw-north-01", f"{prefix}-pump-south-02", f"{prefix}-sensor-a"]
    pairs: list[tuple[dict[str, Any], dict[str, Any], list[str]]] = [
        (
            {"name__in": ",".join(names)},
            {"$filter": "name in (" + ",".join(f"'{n}'" for n in names) + ")"},
            _expect(ids, "gw-north-01", "pump-south-02", "sensor-a"),
        ),
        (
            {"deviceType__eq": "meter"},
            {"$filter": "deviceType eq 'meter'"},
            _expect(ids, "meter-east-01", "meter-east-02", "meter-west-01"),
        ),
        (
            {"deviceType": "pump", "name__neq": f"{prefix}-pump-south-01"},
            {"$filter": f"deviceType eq 'pump' and name ne '{prefix}-pump-south-01'"},
            _expect(ids, "pump-north-01", "pump-south-02"),
        ),
        (
            {"deviceType__nin": "gateway,pump,meter"},
            {"$filter": "not (deviceType in ('gateway','pump','meter'))"},
            _expect(ids, "sensor-b", "sensor-c"),
        ),
        (
            {"name__gte": f"{prefix}-sensor-b"},
            {"$filter": f"name ge '{prefix}-sensor-b'"},
            _expect(ids, "sensor-b", "sensor-c"),
        ),
    ]
    for fields, odata, expected in pairs:
        by_fields = [
            d["id"]
            for d in _list(http, key, {**fields, "$filter": f"startswith(name,'{prefix}-')"})[
                "data"
            ]
        ]
        assert by_fields == expected, fields
        assert _ids(http, key, prefix, odata) == expected, odata


def test_odata_only_filters(fleet: tuple[str, str, dict[str, str]], http: httpx.Client) -> None:
    key, prefix, ids = fleet
    cases: list[tuple[str, list[str]]] = [
        (
            "tags/any(t:t/key eq 'site' and t/value eq 'north')",
            _expect(ids, "gw-north-01", "gw-north-02", "pump-north-01", "sensor-c"),
        ),
        (
            "tags/any(t:t/key eq 'tier') and tags/all(t:t/key eq 'tier' or t/value eq 'north')",
            _expect(ids, "gw-north-01", "pump-north-01", "sensor-b"),
        ),
        ("not tags/any()", _expect(ids, "pump-south-02", "sensor-a")),
        ("tags/any(t:t/key eq 'o''brien')", _expect(ids, "meter-east-02")),
        ("contains(name,'south')", _expect(ids, "gw-south-01", "pump-south-01", "pump-south-02")),
        (
            "endswith(name,'-02') and not startswith(name,'" + prefix + "-meter')",
            _expect(ids, "gw-north-02", "pump-south-02"),
        ),
        ("deviceType eq null", _expect(ids, "sensor-a")),
        (
            "deviceType eq 'sensor' or deviceType eq 'gateway' and contains(name,'south')",
            _expect(ids, "gw-south-01", "sensor-b", "sensor-c"),
        ),
        (
            "(deviceType eq 'sensor' or deviceType eq 'gateway') and contains(name,'south')",
            _expect(ids, "gw-south-01"),
        ),
        (
            "createdAt gt 2000-01-01T00:00:00Z and deviceType eq 'meter' and not (name eq "
            f"'{prefix}-meter-west-01')",
            _expect(ids, "meter-east-01", "meter-east-02"),
        ),
    ]
    for expression, expected in cases:
        assert _ids(http, key, prefix, {"$filter": expression}) == expected, expression


def test_orderby_top_skip_count_select(
    fleet: tuple[str, str, dict[str, str]], http: httpx.Client
) -> None:
    key, prefix, ids = fleet
    by_name_desc = [ids[s] for s in sorted(ids, reverse=True)]
    scope = f"startswith(name,'{prefix}-')"
    assert _ids(http, key, prefix, {"$orderby": "name desc"}) == by_name_desc
    page = _list(
        http,
        key,
        {"$filter": scope, "$orderby": "name desc", "$top": 3, "$skip": 2, "$count": "true"},
    )
    assert [d["id"] for d in page["data"]] == by_name_desc[2:5]
    assert page["totalCount"] == 12 and page["limit"] == 3 and page["hasMore"] is True
    last = _list(http, key, {"$filter": scope, "$orderby": "name desc", "$top": 5, "$skip": 10})
    assert [d["id"] for d in last["data"]] == by_name_desc[10:] and last["hasMore"] is False
    typed = _ids(
        http, key, prefix, {"$orderby": "deviceType,name desc", "$filter": "deviceType ne null"}
    )
    assert typed == _expect(
        ids,
        "gw-south-01", "gw-north-02", "gw-north-01",
        "meter-west-01", "meter-east-02", "meter-east-01",
        "pump-south-02", "pump-south-01", "pump-north-01",
        "sensor-c", "sensor-b",
    )  # fmt: skip
    selected = _list(http, key, {"$filter": scope, "$select": "name", "$top": 2})
    assert [set(d) for d in selected["data"]] == [{"id", "name"}, {"id", "name"}]
    expanded = _list(
        http,
        key,
        {"$filter": f"name eq '{prefix}-gw-north-01'", "$select": "name",
         "$expand": "tags($select=key)"},
    )  # fmt: skip
    assert expanded["data"] == [
        {"id": ids["gw-north-01"], "name": f"{prefix}-gw-north-01",
         "tags": [{"key": "site"}, {"key": "tier"}]}
    ]  # fmt: skip


def test_odata_errors_are_validation_errors(
    fleet: tuple[str, str, dict[str, str]], http: httpx.Client
) -> None:
    key, _, _ = fleet
    for params, field in [
        ({"$filter": "name eq"}, "$filter"),
        ({"$filter": "name like 'x'"}, "$filter"),
        ({"$filter": "colour eq 'red'"}, "colour"),
        ({"$filter": "tags/any(t:t/colour eq 'red')"}, "colour"),
        ({"$select": "name,colour"}, "$select"),
        ({"$expand": "site"}, "$expand"),
        ({"$orderby": "attributes"}, "$orderby"),
        ({"$orderby": "name", "after": str(uuid.uuid4())}, "after"),
        ({"$top": "0"}, "$top"),
    ]:
        r = http.get("/api/v1/devices", params=params, headers=bearer(key))
        assert r.status_code == 400, (params, r.text)
        body = r.json()
        assert body["type"] == "validation_error", body
        assert field in [f["name"] for f in body["fields"]], (params, body)


def test_alternate_key(fleet: tuple[str, str, dict[str, str]], http: httpx.Client) -> None:
    key, prefix, ids = fleet
    name = f"{prefix}-meter-east-02"
    by_id = http.get(f"/api/v1/devices/{ids['meter-east-02']}", headers=bearer(key))
    by_name = http.get(f"/api/v1/devices(name='{name}')", headers=bearer(key))
    assert by_name.status_code == 200, by_name.text
    assert by_name.json() == by_id.json()
    assert by_name.headers["etag"] == by_id.headers["etag"]
    quoted = http.get(f"/api/v1/devices(name=%27{name}%27)", headers=bearer(key))
    assert quoted.json()["id"] == ids["meter-east-02"]
    bare_id = http.get(f"/api/v1/devices({ids['meter-east-02']})", headers=bearer(key))
    assert bare_id.json()["id"] == ids["meter-east-02"]
    selected = http.get(f"/api/v1/devices(name='{name}')?$select=name", headers=bearer(key))
    assert selected.json() == {"id": ids["meter-east-02"], "name": name}
    missing = http.get(f"/api/v1/devices(name='{prefix}-nope')", headers=bearer(key))
    assert missing.status_code == 404 and missing.json()["type"] == "not_found"
    bad = http.get(f"/api/v1/devices(colour='{name}')", headers=bearer(key))
    assert bad.status_code == 400 and bad.json()["fields"][0]["name"] == "key"
    assert http.get(f"/api/v1/devices(name='{name}')").status_code == 401
