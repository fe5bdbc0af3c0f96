"""nats-server's advisories and CONNZ answers as presence reads them (shapes recorded from
nats-server 2.15 in a DevStack), and the callout's device user name they carry."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import pytest

from outpost_contracts.presence import Protocol
from outpost_devices.adapters.broker_events import (
    Snapshot,
    device_user,
    parse_advisory,
    parse_device_user,
)
from outpost_devices.app.broker import DeviceSession
from outpost_devices.domain.presence import Connected, Disconnected

pytestmark = pytest.mark.unit

ORG = uuid.UUID("01a201a5-963f-769a-b334-5dc2ed78a4e0")
DEVICE = uuid.UUID("01a201a5-969b-7c6a-898a-a9c93d9dc88e")
SERVER = "NDONAJCX6TQOKFUH52L6DXUAK65FFZM43BDOMKIKWTDRJLJLVJGWY5LK"


def _advisory(kind: str, client: dict[str, object], **extra: object) -> bytes:
    return json.dumps(
        {
            "type": f"io.nats.server.advisory.v1.client_{kind}",
            "id": "bqTJ2a8qR1cnZbZOpfqWGc",
            "timestamp": "2026-11-22T05:05:59.04879888Z",
            "server": {"name": "outpost-dev", "host": "127.0.0.1", "id": SERVER},
            "client": client,
            **extra,
        }
    ).encode()


def test_the_callout_names_a_device_so_presence_finds_its_organization() -> None:
    session = DeviceSession(ORG, DEVICE, "ab", datetime(2030, 1, 1, tzinfo=UTC))
    assert session.name == device_user(ORG, DEVICE)
    assert parse_device_user(session.name) == (ORG, DEVICE)
    assert parse_device_user("readings") is None
    assert parse_device_user(f"device:{DEVICE}") is None  # the older form: no organization
    assert parse_device_user("device:x:y") is None


def test_a_device_connect_over_mqtt() -> None:
    fact = parse_advisory(
        _advisory(
            "connect",
            {
                "start": "2026-11-22T05:05:59.055882852Z",
                "host": "127.0.0.1",
                "id": 45,
                "acc": "$G",
                "user": device_user(ORG, DEVICE),
                "issuer_key": "$G",
                "name_tag": "$G",
                "kind": "Client",
                "client_type": "mqtt",
                "client_id": str(DEVICE),
            },
        )
    )
    assert fact is not None and (fact.org_id, fact.device_id) == (ORG, DEVICE)
    assert isinstance(fact.fact, Connected)
    c = fact.fact.connection
    assert c.key == f"{SERVER}/45" and c.server_id == SERVER and c.protocol is Protocol.MQTT
    assert c.since == datetime(2026, 11, 22, 5, 5, 59, 55882, tzinfo=UTC)


def test_a_device_disconnect_over_nats() -> None:
    fact = parse_advisory(
        _advisory(
            "disconnect",
            {
                "start": "2026-11-22T05:05:59.033261111Z",
                "id": 44,
                "user": device_user(ORG, DEVICE),
                "stop": "2026-11-22T05:06:00.565148851Z",
                "kind": "Client",
                "client_type": "nats",
            },
            reason="Client Closed",
        )
    )
    assert fact is not None and isinstance(fact.fact, Disconnected)
    assert fact.fact.key == f"{SERVER}/44" and fact.fact.reason == "Client Closed"
    assert fact.fact.at == datetime(2026, 11, 22, 5, 6, 0, 565148, tzinfo=UTC)


def test_services_and_garbage_are_not_devices() -> None:
    assert (
        parse_advisory(
            _advisory("connect", {"start": "2026-11-22T05:05:59Z", "id": 1, "user": "readings"})
        )
        is None
    )
    assert parse_advisory(b"not json") is None
    assert parse_advisory(_advisory("connect", {"user": device_user(ORG, DEVICE)})) is None


def test_a_connz_page_lists_the_devices_connections() -> None:
    snapshot = Snapshot()
    server, seen, total = snapshot.add_page(
        {
            "server_id": SERVER,
            "now": "2026-11-22T05:06:00.562754014Z",
            "num_connections": 2,
            "total": 3,
            "offset": 0,
            "limit": 2,
            "connections": [
                {
                    "cid": 34,
                    "type": "nats",
                    "start": "2026-11-22T05:05:51.9Z",
                    "authorized_user": "exports",
                },
                {
                    "cid": 45,
                    "type": "mqtt",
                    "start": "2026-11-22T05:05:59.055882852Z",
                    "authorized_user": device_user(ORG, DEVICE),
                },
            ],
        }
    )
    assert (server, seen, total) == (SERVER, 2, 3)
    [conn] = snapshot.devices[(ORG, DEVICE)]
    assert conn.key == f"{SERVER}/45" and conn.protocol is Protocol.MQTT
    assert SERVER in snapshot.answered
