"""The broker as devices meet it (docs/api.md, "Device protocol"; ADR 0054): real
clients over real TLS with the certificates provisioning issued."""

from __future__ import annotations

import asyncio
import json
import ssl
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import msgspec
import nats
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from outpost_contracts import streams, subjects
from outpost_devkit.dev.stack import DevStack
from outpost_kit import messaging
from tests.e2e._devices import bearer, connect, mqtt_session, provision, refused
from tests.e2e._poll import eventually

pytestmark = pytest.mark.e2e


async def _errors_until(nc: Any, wanted: Any, seconds: float = 30) -> list[str]:
    """The connection's errors once one satisfies ``wanted`` (or ``seconds`` passed)."""
    deadline = time.monotonic() + seconds
    while not any(wanted(str(e)) for e in nc.errors) and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.05)
    return [str(e) for e in nc.errors]


async def _last_on(stack: DevStack, subject: str) -> Any:
    nc = await nats.connect(stack.nats_service_url(), tls=stack.nats_tls())
    try:
        return await nc.jetstream().get_last_msg("TELEMETRY", subject)
    except nats.js.errors.NotFoundError:
        return None
    finally:
        await nc.close()


@pytest.fixture
def org(tenants: Any) -> tuple[str, dict[str, str]]:
    org = tenants.org("broker")
    return org["id"], bearer(tenants.key(org["id"])["key"])


def test_a_device_publishes_its_telemetry_and_nothing_else(
    stack: DevStack,
    platform: dict[str, Any],
    http: httpx.Client,
    org: tuple[str, dict[str, str]],
    tmp_path: Path,
) -> None:
    org_id, auth = org
    device = provision(http, auth, org_id, tmp_path)
    other = provision(http, auth, org_id, tmp_path)
    ca = platform["brokerCaFile"]

    async def run() -> None:
        nc = await connect(platform["natsUrl"], device.tls(ca))
        payload = json.dumps({"seq": 1, "readings": [{"sensor": "t", "value": 1.5}]}).encode()
        await nc.publish(device.telemetry, payload)
        # Another device's subject, a made-up one, and another organization's: refused.
        await nc.publish(other.telemetry, b'{"seq": 1, "readings": []}')
        await nc.publish(subjects.telemetry(uuid.uuid4(), device.id), b"{}")
        await nc.flush()
        # The broker's refusals come back asynchronously: waited for, not a guessed 0.5 s.
        violations = await _errors_until(
            nc, lambda v: "permissions violation" in v and other.telemetry in v
        )
        assert any("permissions violation" in v and other.telemetry in v for v in violations)
        # Subscribing to its commands is allowed, to anything else is not.
        stolen: list[bytes] = []

        async def steal(msg: Any) -> None:
            stolen.append(msg.data)

        await nc.subscribe(subjects.command(org_id, device.id))
        await nc.subscribe(subjects.command(org_id, other.id), cb=steal)
        await nc.flush()
        await _errors_until(nc, lambda v: "subscription" in v)
        assert any("subscription" in str(e) for e in nc.errors), nc.errors
        # ...and nothing sent to the other device's command subject reaches it.
        service = await nats.connect(stack.nats_service_url(), tls=stack.nats_tls())
        await service.publish(subjects.command(org_id, other.id), b'{"id": "x"}')
        await service.flush()
        await service.close()
        await asyncio.sleep(0.5)
        assert stolen == []
        await nc.close()

        msg = await _last_on(stack, device.telemetry)
        assert msg is not None and msg.data == payload
        # The organization and device are the subject's, which only the certificate allowed.
        assert msg.subject == device.telemetry
        assert await _last_on(stack, other.telemetry) is None

    asyncio.run(run())


def test_connections_without_a_valid_device_certificate_are_refused(
    stack: DevStack,
    platform: dict[str, Any],
    http: httpx.Client,
    org: tuple[str, dict[str, str]],
    tmp_path: Path,
) -> None:
    org_id, auth = org
    url, ca = platform["natsUrl"], platform["brokerCaFile"]
    device = provision(http, auth, org_id, tmp_path)

    # A self-signed certificate naming the same device: refused at the TLS handshake.
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, org_id),
            x509.NameAttribute(NameOID.COMMON_NAME, device.id),
        ]
    )
    now = datetime.now(UTC)
    forged = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=1))
        .not_valid_after(now + timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    forged_dir = tmp_path / "forged"
    forged_dir.mkdir()
    (forged_dir / "c.pem").write_bytes(forged.public_bytes(serialization.Encoding.PEM))
    (forged_dir / "c.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    self_signed = ssl.create_default_context(cafile=ca)
    self_signed.load_cert_chain(forged_dir / "c.pem", forged_dir / "c.key")

    async def run() -> None:
        # It works first, so what follows is refused for the stated reason only.
        nc = await connect(url, device.tls(ca))
        await nc.close()
        await refused(url, ssl.create_default_context(cafile=ca))  # no certificate
        await refused(url, self_signed)

    asyncio.run(run())

    # Revoked: the callout refuses it.
    certs = f"/api/v1/devices/{device.id}/certificates"
    assert http.post(f"{certs}/{device.serial}/revoke", headers=auth).status_code == 200
    asyncio.run(refused(url, device.tls(ca)))

    # Decommissioned: refused too (its certificates are revoked with it).
    other = provision(http, auth, org_id, tmp_path)
    assert http.delete(f"/api/v1/devices/{other.id}", headers=auth).status_code == 204
    asyncio.run(refused(url, other.tls(ca)))


def test_an_mqtt_device_publishes_telemetry_over_tls(
    stack: DevStack,
    platform: dict[str, Any],
    http: httpx.Client,
    org: tuple[str, dict[str, str]],
    tmp_path: Path,
) -> None:
    org_id, auth = org
    device = provision(http, auth, org_id, tmp_path)
    with mqtt_session(device, platform["brokerCaFile"], stack.mqtt_port) as client:
        assert not client.connack.is_failure, client.connack
        payload = json.dumps({"seq": 7, "readings": [{"sensor": "t", "value": 2}]}).encode()
        info = client.publish(subjects.mqtt_topic(device.telemetry), payload, qos=1)
        info.wait_for_publish(30)
        deadline = time.monotonic() + 30  # a loaded machine
        while True:
            msg = asyncio.run(_last_on(stack, device.telemetry))
            if msg is not None or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert msg is not None and msg.data == payload


async def _telemetry_captures(stack: DevStack, *subject_filters: str) -> None:
    """TELEMETRY's subjects set as the stream administrator would (``subject_filters``, or
    its declared ones when none is given)."""
    spec = streams.stream("TELEMETRY")
    if subject_filters:
        spec = msgspec.structs.replace(spec, subjects=subject_filters)
    nc = await nats.connect(stack.nats_service_url(), tls=stack.nats_tls())
    try:
        await messaging.apply_streams(nc.jetstream(), [spec])
    finally:
        await nc.close()


def test_an_mqtt_reading_acknowledged_while_telemetry_captured_nothing_is_stored_once(
    stack: DevStack,
    platform: dict[str, Any],
    http: httpx.Client,
    org: tuple[str, dict[str, str]],
    tmp_path: Path,
) -> None:
    """Decision 82: nats-server sends an MQTT QoS 1 PUBACK once its own stream $MQTT_msgs has
    the message; the copy TELEMETRY captures is a core publish, which a TELEMETRY without a
    leader (a node lost) never stores. Forced here: while the device publishes, TELEMETRY
    captures another subject only, so $MQTT_msgs holds the only copy; readings stores it, once."""
    org_id, auth = org
    device = provision(http, auth, org_id, tmp_path)
    asyncio.run(_telemetry_captures(stack, subjects.telemetry(org_id, uuid.uuid4())))
    try:
        with mqtt_session(device, platform["brokerCaFile"], stack.mqtt_port) as client:
            payload = {"seq": 1, "readings": [{"sensor": "t", "value": 41.5}]}
            info = client.publish(
                subjects.mqtt_topic(device.telemetry), json.dumps(payload).encode(), qos=1
            )
            info.wait_for_publish(30)
            assert info.is_published()  # the PUBACK
    finally:
        asyncio.run(_telemetry_captures(stack))
    assert asyncio.run(_last_on(stack, device.telemetry)) is None  # TELEMETRY has no copy

    def stored() -> list[float]:
        got = http.get(
            "/api/v1/readings", params={"deviceId": device.id, "limit": 10}, headers=auth
        )
        assert got.status_code == 200, got.text
        return [r["value"] for r in got.json()["data"]]

    assert eventually(stored, timeout=60, every=2.0) == [41.5]  # within the list limit
    # Published again normally: TELEMETRY captures it too, and it is still stored once.
    with mqtt_session(device, platform["brokerCaFile"], stack.mqtt_port) as client:
        payload = {"seq": 2, "readings": [{"sensor": "t", "value": 42.5}]}
        info = client.publish(
            subjects.mqtt_topic(device.telemetry), json.dumps(payload).encode(), qos=1
        )
        info.wait_for_publish(30)
    assert eventually(lambda: asyncio.run(_last_on(stack, device.telemetry)), timeout=30)
    assert eventually(lambda: len(stored()) == 2, timeout=60, every=2.0)
    assert sorted(stored()) == [41.5, 42.5]


@pytest.mark.parametrize("cut", ["decommission", "revoke"])
def test_a_connected_device_is_disconnected_when_decommissioned_or_revoked(
    cut: str,
    stack: DevStack,
    platform: dict[str, Any],
    http: httpx.Client,
    org: tuple[str, dict[str, str]],
    tmp_path: Path,
) -> None:
    org_id, auth = org
    url, ca = platform["natsUrl"], platform["brokerCaFile"]
    device = provision(http, auth, org_id, tmp_path)

    async def run() -> None:
        nc = await connect(url, device.tls(ca))
        await nc.publish(device.telemetry, b'{"seq": 1, "readings": []}')
        await nc.flush()
        assert nc.is_connected
        if cut == "decommission":
            resp = await asyncio.to_thread(
                http.delete, f"/api/v1/devices/{device.id}", headers=auth
            )
            assert resp.status_code == 204, resp.text
        else:
            resp = await asyncio.to_thread(
                http.post,
                f"/api/v1/devices/{device.id}/certificates/{device.serial}/revoke",
                headers=auth,
            )
            assert resp.status_code == 200, resp.text
        deadline = time.monotonic() + 30
        while nc.is_connected and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.1)
        assert not nc.is_connected, "still connected"
        await nc.close()
        await refused(url, device.tls(ca))

    asyncio.run(run())
