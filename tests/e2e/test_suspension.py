"""An organization's suspension reaches its devices (ADR 0076): real
devices over real TLS, the platform as ``make dev`` starts it."""

from __future__ import annotations

import asyncio
import base64
import ssl
import threading
import time
import uuid
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import httpx
import msgspec
import nats
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from nats.errors import Error as NatsError

from outpost_devkit.dev.stack import DevStack
from outpost_kit.db.engine import plain_dsn
from tests.e2e._devices import PROVISION, TOKENS, Device, bearer, connect, provision
from tests.e2e._poll import eventually
from tests.e2e._webhooks import Receiver

pytestmark = pytest.mark.e2e

RENEW = "/api/v1/devices/certificates/renew"
SECRET = "e2e-suspension-webhook-secret-7"
T = TypeVar("T")


class Loop:
    """An event loop in a thread of its own, so the devices' connections keep running (and
    notice being closed) while the test polls the platform synchronously."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 30) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@pytest.fixture
def loop() -> Iterator[Loop]:
    running = Loop()
    yield running
    running.close()


def _csr(key: ec.EllipticCurvePrivateKey) -> str:
    return (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "device")]))
        .sign(key, hashes.SHA256())
        .public_bytes(serialization.Encoding.PEM)
        .decode()
    )


def _renewal(device: Device) -> dict[str, str]:
    """A renewal request of ``device``: a new CSR signed by its current key."""
    key = serialization.load_pem_private_key(device.key_file.read_bytes(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    csr = _csr(ec.generate_private_key(ec.SECP256R1()))
    der = x509.load_pem_x509_csr(csr.encode()).public_bytes(serialization.Encoding.DER)
    certificate = device.chain_file.read_text().split("-----END CERTIFICATE-----")[0]
    return {
        "certificate": certificate + "-----END CERTIFICATE-----\n",
        "csr": csr,
        "signature": base64.b64encode(key.sign(der, ec.ECDSA(hashes.SHA256()))).decode(),
    }


def _message(seq: int, value: float) -> bytes:
    return msgspec.json.encode({"seq": seq, "readings": [{"sensor": "temp", "value": value}]})


def _values(http: httpx.Client, key: str, device: Device) -> list[float]:
    got = http.get(
        "/api/v1/readings", params={"deviceId": device.id, "limit": 100}, headers=bearer(key)
    )
    assert got.status_code == 200, got.text
    return [r["value"] for r in got.json()["data"]]


async def _try_connect(url: str, device: Device, ca: str) -> Any:
    try:
        return await connect(url, device.tls(ca))
    except (TimeoutError, NatsError, OSError, ssl.SSLError):
        return None


async def _publish(stack: DevStack, subject: str, payload: bytes) -> None:
    """A message on a device's telemetry subject from inside the platform: what a device
    that was still connected would have published."""
    nc = await nats.connect(stack.nats_service_url(), tls=stack.nats_tls())
    try:
        await nc.jetstream().publish(subject, payload)
    finally:
        await nc.close()


async def _settled(stack: DevStack) -> bool:
    """Readings' and alerting's telemetry consumers have nothing left to deliver or ack."""
    nc = await nats.connect(stack.nats_service_url(), tls=stack.nats_tls())
    try:
        js = nc.jetstream()
        for name in ("readings-telemetry", "alerting-telemetry"):
            info = await js.consumer_info("TELEMETRY", name)
            if info.num_pending or info.num_ack_pending:
                return False
        return True
    finally:
        await nc.close()


async def _recorded(stack: DevStack, org_id: str) -> set[str]:
    """The services whose own table says the organization is suspended."""
    assert stack.pg is not None
    conn = await asyncpg.connect(plain_dsn(stack.pg.admin_dsn))
    try:
        found = set()
        for schema in ("devices", "readings", "alerting"):
            row = await conn.fetchval(
                f"SELECT suspended FROM {schema}.organization_suspensions WHERE tenant_id = $1",
                uuid.UUID(org_id),
            )
            if row:
                found.add(schema)
        return found
    finally:
        await conn.close()


def test_a_suspension_reaches_the_devices_and_lifting_it_restores_them(
    stack: DevStack,
    platform: dict[str, Any],
    http: httpx.Client,
    tenants: Any,
    raise_limits: Any,
    loop: Loop,
    tmp_path: Path,
) -> None:
    """docs/design/reliability.md ``suspension``: suspend an organization with a device connected
    and publishing → within 5 s the device is disconnected and refused on reconnect,
    provisioning and renewal answer 403, its telemetry published meanwhile is neither
    stored nor alerted on (no webhook), another organization's device keeps publishing and
    is stored; lift → the device reconnects, its telemetry is stored and alerted on."""
    operator = bearer(platform["operatorKey"])
    url, ca = platform["natsUrl"], platform["brokerCaFile"]
    org, other = tenants.org("suspension"), tenants.org("bystander")
    raise_limits(org["id"])
    raise_limits(other["id"])
    key, other_key = tenants.key(org["id"])["key"], tenants.key(other["id"])["key"]
    device = provision(http, bearer(key), org["id"], tmp_path)
    neighbour = provision(http, bearer(other_key), other["id"], tmp_path)
    spare = http.post(TOKENS, json={"deviceName": "spare"}, headers=bearer(key))
    assert spare.status_code == 201, spare.text
    receiver = Receiver()
    channel = http.post(
        "/api/v1/notification-channels",
        json={"type": "WEBHOOK", "name": "ops", "url": receiver.url, "secret": SECRET},
        headers=bearer(key),
    )
    assert channel.status_code == 201, channel.text
    rule = http.post(
        "/api/v1/alert-rules",
        json={
            "name": "too hot",
            "scope": {"type": "DEVICE", "id": device.id},
            "sensor": "temp",
            "condition": {"op": ">", "threshold": 50},
            "severity": "CRITICAL",
            "channelIds": [channel.json()["id"]],
        },
        headers=bearer(key),
    )
    assert rule.status_code == 201, rule.text

    nc = loop.run(connect(url, device.tls(ca)))
    other_nc = loop.run(connect(url, neighbour.tls(ca)))
    loop.run(nc.publish(device.telemetry, _message(1, 1)))
    loop.run(other_nc.publish(neighbour.telemetry, _message(1, 1)))
    loop.run(nc.flush())
    loop.run(other_nc.flush())
    assert eventually(lambda: _values(http, key, device) == [1])
    assert eventually(lambda: _values(http, other_key, neighbour) == [1])

    suspended = http.post(f"/api/v1/admin/organizations/{org['id']}/suspend", headers=operator)
    assert suspended.status_code == 200 and suspended.json()["status"] == "SUSPENDED"
    start = time.monotonic()
    assert eventually(lambda: not nc.is_connected, timeout=5, every=0.05), "still connected"
    assert time.monotonic() - start < 5
    assert loop.run(_try_connect(url, device, ca)) is None, "reconnected while suspended"
    # Its registration tokens and certificates: access_denied (the token stays unspent).
    csr = _csr(ec.generate_private_key(ec.SECP256R1()))
    redeem = {"token": spare.json()["token"], "csr": csr}
    for refused in (http.post(PROVISION, json=redeem), http.post(RENEW, json=_renewal(device))):
        assert refused.status_code == 403, refused.text
        assert refused.json()["type"] == "access_denied"

    # Telemetry of the suspended organization reaching the stream now (a device still
    # connected would publish it) once every service has recorded the suspension: a value
    # the rule would fire on. The other organization's device keeps publishing.
    assert eventually(
        lambda: loop.run(_recorded(stack, org["id"])) == {"devices", "readings", "alerting"}
    )
    loop.run(_publish(stack, device.telemetry, _message(2, 99)))
    loop.run(other_nc.publish(neighbour.telemetry, _message(2, 2)))
    loop.run(other_nc.flush())
    assert eventually(lambda: _values(http, other_key, neighbour) == [1, 2])
    assert other_nc.is_connected
    assert eventually(lambda: loop.run(_settled(stack)))
    assert receiver.received == []

    lifted = http.post(f"/api/v1/admin/organizations/{org['id']}/reinstate", headers=operator)
    assert lifted.status_code == 200, lifted.text
    assert lifted.json()["status"] == "ACTIVE" and lifted.json()["version"] == 3
    assert eventually(lambda: http.get("/api/v1/devices", headers=bearer(key)).status_code == 200)
    back = eventually(lambda: loop.run(_try_connect(url, device, ca)), timeout=15)
    assert back is not None, "refused after the suspension was lifted"
    # Forced, not hoped for: every service has recorded the reinstatement before the device
    # publishes (readings drops a suspended organization's telemetry, acknowledged).
    assert eventually(lambda: loop.run(_recorded(stack, org["id"])) == set())
    loop.run(back.publish(device.telemetry, _message(3, 3)))
    loop.run(back.flush())
    assert eventually(lambda: 3 in _values(http, key, device))
    assert _values(http, key, device) == [1, 3]  # the reading of seq 2 was never stored
    assert eventually(lambda: loop.run(_settled(stack)))
    alerts = http.get("/api/v1/alerts", headers=bearer(key))
    assert alerts.status_code == 200 and alerts.json()["data"] == [], alerts.text
    assert receiver.received == []
    # Evaluation and notifications are back too, and the spare token redeems.
    loop.run(back.publish(device.telemetry, _message(4, 98)))
    loop.run(back.flush())
    assert eventually(lambda: receiver.received), "no webhook after the suspension was lifted"
    redeemed = http.post(PROVISION, json=redeem)
    assert redeemed.status_code == 201, redeemed.text
    renewed = http.post(RENEW, json=_renewal(device))
    assert renewed.status_code == 201, renewed.text
    for conn in (back, other_nc):
        loop.run(conn.close())
    receiver.close()
