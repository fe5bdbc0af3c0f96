"""Contracts: round-trips, wire tags, subjects, schema export."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID, uuid4

import msgspec
import pytest

from outpost_contracts import devices, identity, readings, subjects
from outpost_contracts.base import Event, Request, event_name, wire_tag
from outpost_contracts.credentials import generate_key, hash_key, lookup_prefix, verify_key
from outpost_contracts.envelope import (
    PLATFORM_ORG_ID,
    EventEnvelope,
    Principal,
    PrincipalKind,
    RequestContext,
)
from outpost_contracts.errors import (
    HTTP_STATUS,
    ErrorType,
    NotFound,
    OutpostError,
    ServiceUnavailable,
)
from outpost_contracts.query import And, AnyOf, Cmp, ListQuery, Not, Or, count_nodes, depth
from outpost_contracts.schemas import json_schemas

pytestmark = pytest.mark.unit

CTX = RequestContext(
    request_id="0" * 32,
    org_id=uuid4(),
    principal=Principal(kind=PrincipalKind.API_KEY, id=uuid4(), org_id=uuid4(), scopes=("*",)),
)


def test_request_round_trip_through_an_operation() -> None:
    body = devices.CreateDevice(name="pump-1", tags=[devices.Tag(key="site", value="north")])
    raw = devices.CREATE_DEVICE.encode_request(CTX, body)
    assert b'"deviceType"' in raw  # camelCase on the wire
    decoded = devices.CREATE_DEVICE.decode_request(raw)
    assert decoded.ctx == CTX
    assert decoded.body == body


def test_reply_carries_result_or_typed_error() -> None:
    view = identity.OrganizationView(
        id=uuid4(),
        name="acme",
        status=identity.OrganizationStatus.ACTIVE,
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
        version=1,
    )
    op = identity.GET_ORGANIZATION
    assert op.decode_reply(op.encode_result(view)) == view
    with pytest.raises(NotFound) as caught:
        op.decode_reply(op.encode_error(NotFound("no such organization")))
    assert caught.value.status == 404
    assert caught.value.message == "no such organization"


def test_every_error_type_has_an_http_status() -> None:
    assert set(HTTP_STATUS) == set(ErrorType)
    assert ServiceUnavailable("x").status == 503
    assert OutpostError("x").status == 500


def test_requests_refuse_unknown_fields_events_tolerate_them() -> None:
    with pytest.raises(msgspec.ValidationError, match="unknown field"):
        msgspec.json.decode(b'{"name":"a","isAdmin":true}', type=devices.CreateDevice)
    event = msgspec.json.decode(
        b'{"type":"devices.DeviceRegistered.v1","name":"a","addedLater":1}',
        type=devices.DeviceRegistered,
    )
    assert event.name == "a"


def test_event_envelope_round_trip_keeps_the_tagged_payload() -> None:
    env = EventEnvelope(
        id=uuid4(),
        org_id=uuid4(),
        stream_id=uuid4(),
        stream_type="device",
        version=1,
        occurred_at=datetime(2026, 1, 1, tzinfo=UTC),
        data=devices.DeviceRegistered(name="a"),
    )
    raw = msgspec.json.encode(env)
    assert b'"type":"devices.DeviceRegistered.v1"' in raw
    typed = msgspec.defstruct(
        "E",
        [("data", devices.DeviceRegistered)],
        bases=(EventEnvelope,),
        kw_only=True,
        frozen=True,
        rename="camel",
    )
    assert msgspec.json.decode(raw, type=typed).data == env.data


def test_wire_tags_are_versioned() -> None:
    assert wire_tag("devices", "DeviceRegistered", 1) == "devices.DeviceRegistered.v1"
    assert event_name("identity.ApiKeyRevoked.v2") == ("identity", "ApiKeyRevoked", 2)
    with pytest.raises(ValueError):
        wire_tag("devices", "lowercase", 1)
    for cls in (identity.ApiKeyCreated, identity.OrganizationCreated, devices.DeviceRegistered):
        assert issubclass(cls, Event)
        assert str(cls.__struct_config__.tag).endswith(".v1")


def test_subjects() -> None:
    org, dev = UUID(int=1), UUID(int=2)
    assert subjects.event("devices.DeviceRegistered.v1", org) == (
        f"outpost.evt.devices.{org}.DeviceRegistered.v1"
    )
    assert subjects.rpc("devices", "CreateDevice") == "outpost.rpc.devices.CreateDevice"
    tel = subjects.telemetry(org, dev)
    assert subjects.parse_telemetry(tel) == (str(org), str(dev))
    assert subjects.command_ack(org, dev) == subjects.command(org, dev) + ".ack"
    assert subjects.mqtt_topic(tel) == tel.replace(".", "/")
    assert (
        subjects.event_filter("devices", "DeviceRegistered")
        == "outpost.evt.devices.*.DeviceRegistered.*"
    )
    with pytest.raises(ValueError):
        subjects.telemetry("a.b", dev)
    with pytest.raises(ValueError):
        subjects.parse_telemetry("outpost.cmd.x.y")


def test_filter_tree_round_trips_and_measures() -> None:
    tree = And(
        items=[
            Cmp(field="name", op="startswith", value="pump"),
            Or(
                items=[
                    Cmp(field="status", op="in", value=["ACTIVE", "PROVISIONED"]),
                    Not(item=Cmp(field="deviceType", op="eq", value=None)),
                ]
            ),
            AnyOf(relation="tags", predicate=Cmp(field="key", op="eq", value="site")),
        ]
    )
    query = ListQuery(filter=tree, limit=10)
    assert msgspec.json.decode(msgspec.json.encode(query), type=ListQuery) == query
    assert depth(tree) == 4
    assert count_nodes(tree) == 8


def test_api_keys() -> None:
    key, prefix = generate_key()
    assert key.startswith("sk_live_")
    assert lookup_prefix(key) == prefix
    assert verify_key(key, hash_key(key))
    assert not verify_key(key[:-1] + ("A" if key[-1] != "A" else "B"), hash_key(key))
    assert lookup_prefix("sk_live_short") is None
    assert lookup_prefix("Bearer nonsense") is None


def test_json_schema_covers_every_contract() -> None:
    schemas = json_schemas()
    for name in ("DeviceRegistered", "CreateDevice", "ApiKeyCreated", "ListQuery", "ServiceError"):
        assert name in schemas["contracts"]
    assert "ListQuery" in schemas["$defs"]
    assert readings.TelemetryMessage  # device payload is a plain struct, documented by docs/api.md
    assert PLATFORM_ORG_ID.int == 0


def _request_types() -> list[type[Request]]:
    found: list[type[Request]] = []
    todo: list[type[Request]] = [Request]
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo.extend(cls.__subclasses__())
    return found


def _naive_datetimes(t: msgspec.inspect.Type) -> bool:
    if isinstance(t, msgspec.inspect.DateTimeType):
        return t.tz is not True
    if isinstance(t, msgspec.inspect.UnionType):
        return any(_naive_datetimes(member) for member in t.types)
    if isinstance(t, msgspec.inspect.ListType | msgspec.inspect.SetType):
        return _naive_datetimes(t.item_type)
    return False


def test_requests_take_only_timestamps_with_an_offset() -> None:
    """`expiresAt: "2099-01-01T00:00:00"` decoded to a naive datetime, and identity's
    comparison with the (aware) clock answered 500 (seen in msgspec's schema of the body,
    which had no `date-time` format, and confirmed end to end)."""
    with pytest.raises(msgspec.ValidationError, match="timezone"):
        msgspec.json.decode(
            b'{"name":"k","expiresAt":"2099-01-01T00:00:00"}', type=identity.CreateApiKey
        )
    key = msgspec.json.decode(
        b'{"name":"k","expiresAt":"2099-01-01T00:00:00Z"}', type=identity.CreateApiKey
    )
    assert key.expires_at == datetime(2099, 1, 1, tzinfo=UTC)
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert(
            {"deviceId": str(uuid4()), "from": "2020-01-01T00:00:00"},
            readings.ListReadings,
            strict=False,
        )
    naive = [
        f"{cls.__name__}.{field.name}"
        for cls in _request_types()
        if cls is not Request
        for field in msgspec.inspect.type_info(cls).fields  # type: ignore[attr-defined]
        if _naive_datetimes(field.type)
    ]
    assert naive == []
