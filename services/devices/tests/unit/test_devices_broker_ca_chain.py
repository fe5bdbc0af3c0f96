"""``brokerCaChain`` (decision 78): the broker's trust anchors are read once at start from
``OUTPOST_DEVICES_BROKER_CA_CHAIN_FILE`` and a wrong file fails the start, not a device."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from outpost_devices.bootstrap import broker_ca_chain, provisioning_config
from outpost_devices.settings import DevicesSettings

pytestmark = pytest.mark.unit


def _ca_pem() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "broker CA")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def test_the_chain_is_read_at_start_and_told_to_devices(tmp_path: Path) -> None:
    pem = _ca_pem() + _ca_pem()
    path = tmp_path / "broker-ca.pem"
    path.write_text(pem)
    settings = DevicesSettings(broker_ca_chain_file=str(path))
    assert broker_ca_chain(settings) == pem
    assert provisioning_config(settings).broker_ca_chain == pem
    assert provisioning_config(DevicesSettings()).broker_ca_chain == ""


def test_a_file_without_a_certificate_fails_the_start(tmp_path: Path) -> None:
    path = tmp_path / "not-a-ca.pem"
    path.write_text("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
    with pytest.raises(ValueError):
        broker_ca_chain(DevicesSettings(broker_ca_chain_file=str(path)))
    with pytest.raises(OSError):
        broker_ca_chain(DevicesSettings(broker_ca_chain_file=str(tmp_path / "missing.pem")))
