"""The broker as devices meet it (API.md, "Device protocol"; docs/decisions.md, "The
broker"): real clients over real TLS with the certificates provisioning issued."""

from __future__ import annotations

import asyncio
import json
import ssl
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import nats
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from nats.errors import Error as NatsError

from outpost_contracts import subjects
from outpost_kit.dev.stack import DevStack

pytestmark = pytest.mark.e2e

TOKENS = "/api/v1/devices/registration/tokens"
PROVISION = "/api/v1/devices/provision"


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


class Device:
    """A provisioned device's files: key, certificate + its organization's CA (the chain)."""

    def __init__(self, directory: Path, org_id: str, device_id: str) -> None:
        self.directory, self.org_id, self.id = directory, org_id, device_id
        self.key_file = directory / f"{device_id}.key"
        self.chain_file = directory / f"{device_id}.pem"
        self.serial = ""

    @property
    def telemetry(self) -> str:
        return subjects.telemetry(self.org_id, self.id)

    def tls(self, broker_ca: str) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=broker_ca)
        context.load_cert_chain(self.chain_file, self.key_file)
        return context


def _provision(http: httpx.Client, auth: dict[str, str], org_id: str, tmp: Path) -> Device:
    issued = http.post(TOKENS, json={"deviceName": f"d-{uuid.uuid4().hex[:8]}"}, headers=auth)
    assert issued.status_code == 201, issued.text
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "device")]))
        .sign(key, hashes.SHA256())
        .public_bytes(serialization.Encoding.PEM)
        .decode()
    )
    resp = http.post(PROVISION, json={"token": issued.json()["token"], "csr": csr})
    assert resp.status_code == 201, resp.text
    body = resp.json()
    device = Device(tmp, org_id, body["deviceId"])
    device.key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    device.chain_file.write_text(body["certificate"] + body["caChain"])
    cert = x509.load_pem_x509_certificate(body["certificate"].encode())
    device.serial = format(cert.serial_number, "x")
    return device


async def _connect(url: str, tls: ssl.SSLContext | None) -> Any:
    errors: list[Exception] = []

    async def record(exc: Exception) -> None:
        errors.append(exc)

    nc = await nats.connect(
        url,
        tls=tls,
        allow_reconnect=False,
        max_reconnect_attempts=0,
        connect_timeout=5,
        error_cb=record,
    )
    nc.errors = errors  # type: ignore[attr-defined]
    return nc


async def _refused(url: str, tls: ssl.SSLContext | None) -> None:
    try:
        nc = await _connect(url, tls)
    except (TimeoutError, NatsError, OSError, ssl.SSLError):
        return
    await nc.close()
    pytest.fail("the broker accepted the connection")


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
    device = _provision(http, auth, org_id, tmp_path)
    other = _provision(http, auth, org_id, tmp_path)
    ca = platform["brokerCaFile"]

    async def run() -> None:
        nc = await _connect(platform["natsUrl"], device.tls(ca))
        payload = json.dumps({"seq": 1, "readings": [{"sensor": "t", "value": 1.5}]}).encode()
        await nc.publish(device.telemetry, payload)
        # Another device's subject, a made-up one, and another organization's: refused.
        await nc.publish(other.telemetry, b'{"seq": 1, "readings": []}')
        await nc.publish(subjects.telemetry(uuid.uuid4(), device.id), b"{}")
        await nc.flush()
        await asyncio.sleep(0.5)
        violations = [str(e) for e in nc.errors]
        assert any("permissions violation" in v and other.telemetry in v for v in violations)
        # Subscribing to its commands is allowed, to anything else is not.
        await nc.subscribe(subjects.command(org_id, device.id))
        await nc.subscribe(subjects.command(org_id, other.id))
        await nc.flush()
        await asyncio.sleep(0.5)
        assert any("subscription" in str(e) for e in nc.errors), nc.errors
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
    device = _provision(http, auth, org_id, tmp_path)

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
        nc = await _connect(url, device.tls(ca))
        await nc.close()
        await _refused(url, ssl.create_default_context(cafile=ca))  # no certificate
        await _refused(url, self_signed)

    asyncio.run(run())

    # Revoked: the callout refuses it.
    certs = f"/api/v1/devices/{device.id}/certificates"
    assert http.post(f"{certs}/{device.serial}/revoke", headers=auth).status_code == 200
    asyncio.run(_refused(url, device.tls(ca)))

    # Decommissioned: refused too (its certificates are revoked with it).
    other = _provision(http, auth, org_id, tmp_path)
    assert http.delete(f"/api/v1/devices/{other.id}", headers=auth).status_code == 204
    asyncio.run(_refused(url, other.tls(ca)))


def test_an_mqtt_device_publishes_telemetry_over_tls(
    stack: DevStack,
    platform: dict[str, Any],
    http: httpx.Client,
    org: tuple[str, dict[str, str]],
    tmp_path: Path,
) -> None:
    import paho.mqtt.client as mqtt

    org_id, auth = org
    device = _provision(http, auth, org_id, tmp_path)
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=device.id)
    client.tls_set_context(device.tls(platform["brokerCaFile"]))
    connected = threading.Event()
    result: list[Any] = []

    def on_connect(c: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        result.append(reason)
        connected.set()

    client.on_connect = on_connect
    client.connect("127.0.0.1", stack.mqtt_port)
    client.loop_start()
    try:
        assert connected.wait(10), "no CONNACK"
        assert not result[0].is_failure, result
        payload = json.dumps({"seq": 7, "readings": [{"sensor": "t", "value": 2}]}).encode()
        info = client.publish(subjects.mqtt_topic(device.telemetry), payload, qos=1)
        info.wait_for_publish(10)
        deadline = time.monotonic() + 10
        while True:
            msg = asyncio.run(_last_on(stack, device.telemetry))
            if msg is not None or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert msg is not None and msg.data == payload
    finally:
        client.loop_stop()
        client.disconnect()


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
    device = _provision(http, auth, org_id, tmp_path)

    async def run() -> None:
        nc = await _connect(url, device.tls(ca))
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
        deadline = time.monotonic() + 15
        while nc.is_connected and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.1)
        assert not nc.is_connected, "still connected"
        await nc.close()
        await _refused(url, device.tls(ca))

    asyncio.run(run())
