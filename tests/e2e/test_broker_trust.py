"""A device verifies the broker with only what provisioning gave it (decision 78): the
``brokerCaChain`` of its provisioning answer is the CA file of its TLS connections, over NATS
and MQTT; without it (the system's trust store) the broker cannot be verified
(docs/design/reliability.md ``mtls``, the device's side)."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509

from outpost_devkit.dev.stack import DevStack
from tests.e2e._devices import bearer, connect, mqtt_session, provision, refused

pytestmark = pytest.mark.e2e


def test_a_device_verifies_the_broker_with_its_provisioning_answer_alone(
    stack: DevStack, platform: dict[str, Any], http: httpx.Client, tenants: Any, tmp_path: Path
) -> None:
    org = tenants.org("trust")
    auth = bearer(tenants.key(org["id"])["key"])
    device = provision(http, auth, org["id"], tmp_path)
    anchors = x509.load_pem_x509_certificates(device.broker_ca_file.read_bytes())
    assert anchors and all(
        a.extensions.get_extension_for_class(x509.BasicConstraints).value.ca for a in anchors
    )

    async def run() -> None:
        nc = await connect(platform["natsUrl"], device.tls())  # brokerCaChain, nothing else
        try:
            await nc.publish(device.telemetry, b'{"seq": 1, "readings": []}')
            await nc.flush()
            assert nc.is_connected and not nc.errors
        finally:
            await nc.close()
        # What a device has without it: the system's trust store, which does not know the
        # broker's CA: the handshake fails.
        bare = ssl.create_default_context()
        bare.load_cert_chain(device.chain_file, device.key_file)
        await refused(platform["natsUrl"], bare)

    asyncio.run(run())
    with mqtt_session(device, None, stack.mqtt_port) as client:
        assert not client.connack.is_failure, client.connack
