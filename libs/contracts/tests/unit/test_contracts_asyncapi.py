"""The event streams' AsyncAPI document (issue 23, decision 95): valid AsyncAPI 3.0 by the
official JSON Schema, every event of the contracts in it with the payload schema
``/api/schemas`` serves, the telemetry subjects, and every secret-looking field flagged."""

from __future__ import annotations

import copy
import inspect
import re
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

import msgspec
import pytest

from outpost_contracts import asyncapi, schemas, streams, subjects
from outpost_contracts.base import Event, event_name, event_tag
from outpost_contracts.envelope import EventEnvelope, Principal, PrincipalKind
from outpost_contracts.identity import ApiKeyCreated
from outpost_contracts.readings import TelemetryMessage, TelemetryReading
from outpost_devkit import asyncapi as validator

pytestmark = pytest.mark.unit

ORG = "{" + asyncapi.ORG_PARAMETER + "}"


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    return asyncapi.document()


def _events_of_the_modules() -> list[type[Event]]:
    """Every event type the modules of ``schemas.MODULES`` define, found apart from
    ``asyncapi.event_types`` so that a type it misses fails here."""
    return [
        obj
        for module in schemas.MODULES
        for obj in vars(module).values()
        if inspect.isclass(obj)
        and issubclass(obj, Event)
        and obj is not Event
        and obj.__module__ == module.__name__
    ]


def test_the_document_is_valid_asyncapi_3(doc: dict[str, Any]) -> None:
    assert doc["asyncapi"] == "3.0.0"
    assert validator.errors(doc) == []
    assert validator.unresolved_refs(doc) == []


@pytest.mark.parametrize(
    ("where", "change"),
    [
        ("an operation's action", lambda d: d["operations"]["telemetry"].update(action="publish")),
        ("a channel's address", lambda d: d["channels"]["telemetry"].update(address=5)),
        (
            "a schema's type",
            lambda d: d["components"]["schemas"]["TelemetryMessage"].update(type="banana"),
        ),
        ("the info", lambda d: d.pop("info")),
        ("an unknown top-level field", lambda d: d.update(subscriptions={})),
    ],
)
def test_the_validator_refuses_a_broken_document(
    doc: dict[str, Any], where: str, change: Any
) -> None:
    """The vendored schema is really applied: each break is reported."""
    broken = copy.deepcopy(doc)
    change(broken)
    assert validator.errors(broken), where


def test_a_dangling_reference_is_reported(doc: dict[str, Any]) -> None:
    broken = copy.deepcopy(doc)
    broken["components"]["schemas"].pop("TelemetryReading")
    assert validator.unresolved_refs(broken) == ["#/components/schemas/TelemetryReading"]


def test_every_event_of_the_modules_has_its_channel_and_message(doc: dict[str, Any]) -> None:
    events = _events_of_the_modules()
    assert len(events) > 50
    defs = schemas.json_schemas()["contracts"]
    for event_type in events:
        tag = event_tag(event_type)
        service, _, _ = event_name(tag)
        channel = doc["channels"][tag]
        assert channel["address"] == subjects.event(tag, ORG)
        assert channel["x-outpost-stream"] == asyncapi.stream_of(service).name
        assert channel["messages"] == {tag: {"$ref": f"#/components/messages/{tag}"}}
        message = doc["components"]["messages"][tag]
        data_ref = defs[event_type.__name__]["$ref"].replace("#/$defs/", "#/components/schemas/")
        assert message["payload"]["properties"]["data"] == {"$ref": data_ref}
        operation = doc["operations"][tag]
        assert operation["action"] == "send"
        assert operation["channel"] == {"$ref": f"#/channels/{tag}"}
    # Nothing else: one channel per event type, and the telemetry channel.
    assert set(doc["channels"]) == {event_tag(t) for t in events} | {"telemetry"}


def test_each_service_stream_filter_is_named(doc: dict[str, Any]) -> None:
    tags = {t["name"]: t for t in doc["info"]["tags"]}
    for event_type in _events_of_the_modules():
        service, _, _ = event_name(event_tag(event_type))
        assert tags[service]["x-outpost-filter"] == subjects.organization_events(service, ORG)
        assert subjects.organization_events(service, "o") == f"outpost.evt.{service}.o.>"


def test_the_schemas_are_those_of_api_schemas(doc: dict[str, Any]) -> None:
    """Each component schema is /api/schemas' own, its references moved into components."""
    served = schemas.json_schemas()["$defs"]
    components = doc["components"]["schemas"]
    assert components
    for name, schema in components.items():
        as_served = msgspec.json.encode(served[name]).replace(b"#/$defs/", b"#/components/schemas/")
        assert msgspec.json.encode(schema) == as_served, name


def test_an_event_payload_is_the_envelope_with_its_data_narrowed(doc: dict[str, Any]) -> None:
    envelope = copy.deepcopy(schemas.json_schemas()["$defs"]["EventEnvelope"])
    message = doc["components"]["messages"]["identity.ApiKeyCreated.v1"]
    payload = copy.deepcopy(message["payload"])
    assert payload["properties"].pop("data") == {"$ref": "#/components/schemas/ApiKeyCreated"}
    envelope["properties"].pop("data")
    assert msgspec.json.encode(payload["properties"]) == msgspec.json.encode(
        envelope["properties"]
    ).replace(b"#/$defs/", b"#/components/schemas/")
    assert payload["required"] == envelope["required"]


def test_a_published_envelope_matches_its_message(doc: dict[str, Any]) -> None:
    """An envelope as the outbox encodes it validates against its message's payload, and one
    carrying another event does not."""
    org = uuid4()
    event = ApiKeyCreated(name="k", prefix="sk_live_ab", key_hash="h", scopes=("devices:read",))
    envelope = EventEnvelope(
        id=uuid4(),
        org_id=org,
        stream_id=uuid4(),
        stream_type="api_key",
        version=1,
        occurred_at=datetime(2026, 1, 1, tzinfo=UTC),
        data=event,
        actor=Principal(kind=PrincipalKind.OPERATOR, id=uuid4(), org_id=org),
    )
    wire = msgspec.json.decode(msgspec.json.encode(envelope))
    subject = subjects.event(event_tag(ApiKeyCreated), org)
    channel = validator.channel_of(doc, subject)
    assert channel == "identity.ApiKeyCreated.v1"
    assert validator.payload_errors(doc, channel, wire) == []
    assert validator.payload_errors(doc, "identity.ApiKeyRevoked.v1", wire) != []


def test_telemetry_is_a_subject_per_device(doc: dict[str, Any]) -> None:
    channel = doc["channels"]["telemetry"]
    assert channel["address"] == subjects.telemetry(ORG, "{" + asyncapi.DEVICE_PARAMETER + "}")
    assert set(channel["parameters"]) == {asyncapi.ORG_PARAMETER, asyncapi.DEVICE_PARAMETER}
    assert channel["x-outpost-stream"] == streams.stream("TELEMETRY").name
    org, device = uuid4(), uuid4()
    assert validator.channel_of(doc, subjects.telemetry(org, device)) == "telemetry"
    published = TelemetryMessage(seq=3, readings=[TelemetryReading(sensor="temp", value=21.5)])
    assert (
        validator.payload_errors(
            doc, "telemetry", msgspec.json.decode(msgspec.json.encode(published))
        )
        == []
    )
    assert validator.payload_errors(doc, "telemetry", {"seq": "x", "readings": []}) != []


# Field names that look secret; each match is private or listed here as harmless.
_SECRET_LOOKING = re.compile(r"hash|secret|password|token|private|seed|pem|url|key", re.I)
_HARMLESS = {
    "hasSecret": "a boolean: whether a webhook has a secret, never the secret",
    "tokenId": "the id of a registration token, not the token",
    "publicKeyPem": "a public key: verifying tokens is what it is for (JWKS publishes it)",
    "key": "a sensor's key (its name on the wire, e.g. temp)",
}


def test_every_secret_looking_field_is_private_or_known_harmless(doc: dict[str, Any]) -> None:
    unflagged = []
    for event_type in _events_of_the_modules():
        private = asyncapi.private_fields(event_type)
        for field in msgspec.structs.fields(event_type):
            name = field.encode_name
            if _SECRET_LOOKING.search(name) and name not in private and name not in _HARMLESS:
                unflagged.append(f"{event_tag(event_type)}: {name}")
    assert unflagged == []


def test_private_fields_are_marked_on_their_messages(doc: dict[str, Any]) -> None:
    marked = {
        tag: m.get("x-outpost-private-fields", [])
        for tag, m in doc["components"]["messages"].items()
    }
    for event_type in _events_of_the_modules():
        expected = [f"data.{name}" for name in asyncapi.private_fields(event_type)]
        assert marked[event_tag(event_type)] == expected
    assert marked["identity.ApiKeyCreated.v1"] == ["data.keyHash"]
    assert marked["identity.SessionStarted.v1"] == ["data.refreshTokenHash"]
    assert marked["identity.OAuthClientSecretRotated.v1"] == ["data.secretHash"]
    assert "keyHash" in doc["components"]["messages"]["identity.ApiKeyCreated.v1"]["description"]


def test_every_private_field_exists_on_its_event() -> None:
    """A field renamed or removed from an event cannot leave a stale entry behind."""
    for event_type, fields in asyncapi.PRIVATE_FIELDS.items():
        assert len(asyncapi.private_fields(event_type)) == len(fields) > 0

    class Renamed(Event, tag="identity.Renamed.v1", kw_only=True, frozen=True):
        digest: str

    with pytest.raises(KeyError):
        asyncapi.private_fields(Renamed, {Renamed: {"key_hash": "gone"}})
