"""Devices as the e2e tests meet the platform: provisioned through the gateway with a CSR
made by `cryptography`, then connected over real TLS with nats-py or paho-mqtt."""

from __future__ import annotations

import ssl
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
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

TOKENS = "/api/v1/devices/registration/tokens"
PROVISION = "/api/v1/devices/provision"


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


class Device:
    """A provisioned device's files: key, certificate + its organization's CA (the chain),
    and the broker's trust anchors as provisioning gave them (``brokerCaChain``)."""

    def __init__(self, directory: Path, org_id: str, device_id: str) -> None:
        self.directory, self.org_id, self.id = directory, org_id, device_id
        self.key_file = directory / f"{device_id}.key"
        self.chain_file = directory / f"{device_id}.pem"
        self.broker_ca_file = directory / f"{device_id}-broker-ca.pem"
        self.serial = ""

    @property
    def telemetry(self) -> str:
        return subjects.telemetry(self.org_id, self.id)

    @property
    def commands(self) -> str:
        return subjects.command(self.org_id, self.id)

    def tls(self, broker_ca: str | None = None) -> ssl.SSLContext:
        """TLS as the device has it: the broker verified with the trust anchors provisioning
        gave it, unless a test names another CA file (decision 78)."""
        context = ssl.create_default_context(cafile=broker_ca or self.broker_ca_file)
        context.load_cert_chain(self.chain_file, self.key_file)
        return context


def provision(http: httpx.Client, auth: dict[str, str], org_id: str, tmp: Path) -> Device:
    """A new device of ``org_id``: a registration token, then a CSR redeemed for a certificate."""
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
    device.broker_ca_file.write_text(body["brokerCaChain"])
    cert = x509.load_pem_x509_certificate(body["certificate"].encode())
    device.serial = format(cert.serial_number, "x")
    return device


async def connect(url: str, tls: ssl.SSLContext | None) -> Any:
    """A nats-py connection that does not reconnect; its asynchronous errors in ``.errors``."""
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


async def refused(url: str, tls: ssl.SSLContext | None) -> None:
    try:
        nc = await connect(url, tls)
    except (TimeoutError, NatsError, OSError, ssl.SSLError):
        return
    await nc.close()
    pytest.fail("the broker accepted the connection")


@contextmanager
def mqtt_session(device: Device, broker_ca: str | None, port: int) -> Iterator[Any]:
    """A paho-mqtt client of ``device``, connected over TLS with its certificate and its
    network loop running; the CONNACK's reason code is ``client.connack``. Disconnected on
    leaving."""
    import paho.mqtt.client as mqtt

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=device.id)
    client.tls_set_context(device.tls(broker_ca))
    connected = threading.Event()

    def on_connect(c: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        c.connack = reason
        connected.set()

    client.on_connect = on_connect
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        assert connected.wait(10), "no CONNACK"
        yield client
    finally:
        client.disconnect()
        client.loop_stop()
