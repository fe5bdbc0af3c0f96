"""The AsyncAPI 3.0 document of every subject an integration may subscribe to (issue 23,
decision 95), as the gateway serves it at ``/api/asyncapi``.

Generated from the contracts, never written by hand: the event types are those of
``schemas.MODULES`` (each one's wire tag gives its service, name and version), the subjects
come from ``subjects``, the streams from ``streams.STREAMS``, and every payload schema is the
one ``/api/schemas`` serves (``schemas.json_schemas``), its ``$ref``s pointing into
``components.schemas`` instead of ``$defs``. FastStream's generator would need pydantic
models (it raises on a ``msgspec.Struct``, decision 95), so it does not build this.

Each event travels in an ``EventEnvelope``; a message's payload is that envelope's schema with
``data`` narrowed to the event's own schema. Fields that must never leave Outpost (secret
hashes, URLs that may carry a secret) are named in ``PRIVATE_FIELDS``: the document marks
them (``x-outpost-private-fields``) and the public projection an integration receives drops
them.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Mapping
from typing import Any

import msgspec

from outpost_contracts import identity, notifications, schemas, streams, subjects
from outpost_contracts.base import Event, event_name, event_tag
from outpost_contracts.readings import TelemetryMessage

ASYNCAPI_VERSION = "3.0.0"
DOCUMENT_VERSION = "1.0.0"

ORG_PARAMETER = "organizationId"
DEVICE_PARAMETER = "deviceId"
TELEMETRY_CHANNEL = "telemetry"

_HASH = "SHA-256 of a secret: verifies it, so only identity and the gateway may hold it"
_WEBHOOK_URL = (
    "a webhook URL often carries its own bearer secret in its path or query "
    "(Slack, Teams and Discord incoming webhooks)"
)

# Event type -> {field (Python name): why it must never leave}. A test refuses any event
# field whose name looks secret (hash, secret, password, token, private key, seed) unless it
# is here or known to be harmless, so a new secret field cannot slip out unflagged.
PRIVATE_FIELDS: Mapping[type[Event], Mapping[str, str]] = {
    identity.ApiKeyCreated: {"key_hash": _HASH},
    identity.SessionStarted: {"refresh_token_hash": _HASH},
    identity.SessionRefreshed: {"refresh_token_hash": _HASH},
    identity.OAuthClientCreated: {"secret_hash": _HASH},
    identity.OAuthClientSecretRotated: {"secret_hash": _HASH},
    notifications.NotificationChannelCreated: {"url": _WEBHOOK_URL},
    notifications.NotificationChannelUpdated: {"url": _WEBHOOK_URL},
}


def private_fields(
    event_type: type[Event],
    table: Mapping[type[Event], Mapping[str, str]] = PRIVATE_FIELDS,
) -> dict[str, str]:
    """``{wire field name: reason}`` of the fields of ``event_type`` that never leave; a
    KeyError if ``table`` names a field the type does not have."""
    names = {f.name: f.encode_name for f in msgspec.structs.fields(event_type)}
    return {names[field]: why for field, why in table.get(event_type, {}).items()}


def event_types() -> list[type[Event]]:
    """Every event type of ``schemas.MODULES``, in wire-tag order."""
    found = [t for t in schemas.contract_types() if issubclass(t, Event)]
    return sorted(found, key=event_tag)


def stream_of(service: str) -> streams.StreamSpec:
    """The JetStream stream that stores ``service``'s events."""
    wanted = subjects.service_events(service)
    for spec in streams.STREAMS:
        if wanted in spec.subjects:
            return spec
    raise KeyError(f"no stream stores {wanted}")


def _telemetry_stream() -> streams.StreamSpec:
    for spec in streams.STREAMS:
        if subjects.TELEMETRY_ALL in spec.subjects:
            return spec
    raise KeyError(f"no stream stores {subjects.TELEMETRY_ALL}")


def _param(name: str) -> str:
    return "{" + name + "}"


def _to_components(node: Any) -> Any:
    """``node`` with every ``#/$defs/X`` reference turned into ``#/components/schemas/X``."""
    if isinstance(node, dict):
        return {
            key: (
                value.replace("#/$defs/", "#/components/schemas/", 1)
                if key == "$ref" and isinstance(value, str)
                else _to_components(value)
            )
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [_to_components(item) for item in node]
    return node


def _refs(node: Any) -> set[str]:
    """The names of the ``#/$defs/`` schemas ``node`` refers to directly."""
    if isinstance(node, dict):
        found = {
            value.removeprefix("#/$defs/")
            for key, value in node.items()
            if key == "$ref" and isinstance(value, str) and value.startswith("#/$defs/")
        }
        for value in node.values():
            found |= _refs(value)
        return found
    if isinstance(node, list):
        return set().union(*(_refs(item) for item in node)) if node else set()
    return set()


def _first_line(doc: str | None) -> str:
    return (doc or "").strip().split("\n\n")[0].replace("\n", " ")


def _def_name(contracts: Mapping[str, Any], type_: type) -> str:
    ref: str = contracts[type_.__name__]["$ref"]
    return ref.removeprefix("#/$defs/")


def _envelope_payload(defs: Mapping[str, Any], event_def: str) -> dict[str, Any]:
    envelope = copy.deepcopy(defs["EventEnvelope"])
    envelope["title"] = f"EventEnvelope of {event_def}"
    envelope["description"] = (
        f"{envelope.get('description', '')} `/api/schemas`' EventEnvelope with `data` "
        f"narrowed to {event_def}."
    ).strip()
    envelope["properties"]["data"] = {"$ref": f"#/$defs/{event_def}"}
    return envelope


def _private_note(fields: Mapping[str, str]) -> str:
    listed = "; ".join(f"`data.{name}` ({why})" for name, why in fields.items())
    return f" Never delivered to an integration (the public projection drops them): {listed}."


_DESCRIPTION = """\
Every subject an integration (an organization's own service) may subscribe to on Outpost's \
NATS broker, with each message's payload schema. The schemas are the ones `GET /api/schemas` \
serves (their `$ref`s point into `components.schemas`).

Domain events: `outpost.evt.<service>.<organizationId>.<Name>.v<N>`, one JetStream stream per \
service (`x-outpost-stream`), kept forever; the payload is an `EventEnvelope` whose `data` \
carries the event and its wire tag in `data.type`; `id` is the event id (also the \
`Nats-Msg-Id` header: deliveries are at least once, de-duplicate by it). \
`outpost.evt.<service>.<organizationId>.>` is every event of one service in one organization \
(`x-outpost-filter` on each tag). A breaking change is a new `.v<N+1>` subject published \
beside the old one; new fields are added with defaults, so a reader ignores fields it does \
not know.

Telemetry: `outpost.tel.<organizationId>.<deviceId>`, the readings exactly as the device \
published them (NATS or MQTT), in the TELEMETRY stream (kept 7 days).

Public projection: the fields each message names in `x-outpost-private-fields` (secret hashes, \
URLs that may carry a secret) never leave Outpost; an integration receives each event without \
them."""


@functools.cache
def document() -> dict[str, Any]:
    """The AsyncAPI 3.0 document, built once (a shared dict: callers must not change it)."""
    full = schemas.json_schemas()
    defs: dict[str, Any] = full["$defs"]
    contracts: dict[str, Any] = full["contracts"]

    org = {ORG_PARAMETER: {"$ref": f"#/components/parameters/{ORG_PARAMETER}"}}
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    payloads: list[Any] = []
    services: dict[str, streams.StreamSpec] = {}

    for event_type in event_types():
        tag = event_tag(event_type)
        service, name, version = event_name(tag)
        stream = services.setdefault(service, stream_of(service))
        event_def = _def_name(contracts, event_type)
        payload = _envelope_payload(defs, event_def)
        payloads.append(payload)
        private = private_fields(event_type)
        message: dict[str, Any] = {
            "name": tag,
            "title": f"{name} v{version}",
            "summary": _first_line(event_type.__doc__) or f"{name} ({service})",
            "contentType": "application/json",
            "payload": payload,
            "tags": [{"name": service}],
        }
        if private:
            message["description"] = _private_note(private).strip()
            message["x-outpost-private-fields"] = [f"data.{field}" for field in private]
        messages[tag] = message
        channels[tag] = {
            "address": subjects.event(tag, _param(ORG_PARAMETER)),
            "title": f"{service}: {name} v{version}",
            "messages": {tag: {"$ref": f"#/components/messages/{tag}"}},
            "parameters": org,
            "tags": [{"name": service}],
            "x-outpost-stream": stream.name,
        }
        operations[tag] = {
            "action": "send",
            "channel": {"$ref": f"#/channels/{tag}"},
            "summary": f"Outpost publishes {name} v{version} of an organization",
            "messages": [{"$ref": f"#/channels/{tag}/messages/{tag}"}],
            "tags": [{"name": service}],
        }

    telemetry_def = _def_name(contracts, TelemetryMessage)
    telemetry_payload = {"$ref": f"#/$defs/{telemetry_def}"}
    payloads.append(telemetry_payload)
    telemetry_stream = _telemetry_stream()
    messages[TELEMETRY_CHANNEL] = {
        "name": TELEMETRY_CHANNEL,
        "title": "Telemetry",
        "summary": _first_line(TelemetryMessage.__doc__),
        "contentType": "application/json",
        "payload": telemetry_payload,
        "tags": [{"name": "readings"}],
    }
    channels[TELEMETRY_CHANNEL] = {
        "address": subjects.telemetry(_param(ORG_PARAMETER), _param(DEVICE_PARAMETER)),
        "title": "readings: a device's telemetry",
        "description": (
            "A device's readings as it published them, one message per publish; "
            f"`{subjects.organization_telemetry(_param(ORG_PARAMETER))}` is every device "
            "of the organization."
        ),
        "messages": {TELEMETRY_CHANNEL: {"$ref": f"#/components/messages/{TELEMETRY_CHANNEL}"}},
        "parameters": {
            **org,
            DEVICE_PARAMETER: {"$ref": f"#/components/parameters/{DEVICE_PARAMETER}"},
        },
        "tags": [{"name": "readings"}],
        "x-outpost-stream": telemetry_stream.name,
    }
    operations[TELEMETRY_CHANNEL] = {
        "action": "send",
        "channel": {"$ref": f"#/channels/{TELEMETRY_CHANNEL}"},
        "summary": "A device's readings reach the organization's telemetry subject",
        "messages": [{"$ref": f"#/channels/{TELEMETRY_CHANNEL}/messages/{TELEMETRY_CHANNEL}"}],
        "tags": [{"name": "readings"}],
    }

    # The schemas the payloads reach, exactly as /api/schemas serves them.
    reachable: set[str] = set()
    pending = set().union(*(_refs(p) for p in payloads))
    while pending:
        name = pending.pop()
        if name not in reachable:
            reachable.add(name)
            pending |= _refs(defs[name]) - reachable

    tags = [
        {
            "name": service,
            "description": (
                f"{spec.description}. Stream {spec.name}; every event of the service in one "
                f"organization: `{subjects.organization_events(service, _param(ORG_PARAMETER))}`."
            ),
            "x-outpost-filter": subjects.organization_events(service, _param(ORG_PARAMETER)),
        }
        for service, spec in sorted(services.items())
    ]
    if "readings" not in services:
        tags.append({"name": "readings", "description": "Readings and telemetry"})

    built = {
        "asyncapi": ASYNCAPI_VERSION,
        "id": "urn:outpost:event-streams",
        "info": {
            "title": "Outpost event streams",
            "version": DOCUMENT_VERSION,
            "description": _DESCRIPTION,
            "tags": tags,
        },
        "defaultContentType": "application/json",
        "servers": {
            "broker": {
                "host": _param("broker"),
                "protocol": "nats",
                "description": (
                    "Outpost's NATS broker (JetStream, TLS); an integration's connection "
                    "details name its address and credentials."
                ),
                "variables": {
                    "broker": {
                        "default": "127.0.0.1:4222",
                        "description": "host:port of the broker (make dev's default)",
                    }
                },
            }
        },
        "channels": channels,
        "operations": operations,
        "components": {
            "schemas": {name: _to_components(defs[name]) for name in sorted(reachable)},
            "messages": _to_components(messages),
            "parameters": {
                ORG_PARAMETER: {
                    "description": "The organization's id (a UUID): an integration's own.",
                },
                DEVICE_PARAMETER: {"description": "The device's id (a UUID)."},
            },
        },
    }
    # Plain JSON values only (msgspec's schemas hold tuples), as a client decodes them.
    plain: dict[str, Any] = msgspec.json.decode(msgspec.json.encode(built))
    return plain
