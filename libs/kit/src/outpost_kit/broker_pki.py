"""The development broker's key material, made once under a directory and reused.

- ``broker-ca``: a dev CA that signs the nats-server certificate (127.0.0.1, localhost) and
  the services' client certificate. Clients trust it to verify the broker.
- ``device-root``: the platform device root. The devices service signs every organization's
  CA with it (an intermediate), so nats-server can verify any device certificate at the TLS
  handshake without knowing the organizations; the devices service then decides, in the
  auth callout, which device it is and what it may do (ADR 0054).
- ``issuer.nk``: the account nkey seed the auth callout signs its answers with; nats-server
  is configured with its public key.

Everything is written readable by its owner only. Deployments bring their own material.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import nkeys
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from outpost_kit import pki

VALIDITY = timedelta(days=3650)
SKEW = timedelta(minutes=5)


@dataclass(frozen=True)
class BrokerPki:
    directory: Path

    @property
    def ca_file(self) -> Path:
        """The broker CA: what a client trusts to verify nats-server."""
        return self.directory / "broker-ca.pem"

    @property
    def server_cert(self) -> Path:
        return self.directory / "server.pem"

    @property
    def server_key(self) -> Path:
        return self.directory / "server.key"

    @property
    def service_cert(self) -> Path:
        """The client certificate every Outpost service (and dev tooling) presents."""
        return self.directory / "service.pem"

    @property
    def service_key(self) -> Path:
        return self.directory / "service.key"

    @property
    def device_root_cert(self) -> Path:
        return self.directory / "device-root.pem"

    @property
    def device_root_key(self) -> Path:
        return self.directory / "device-root.key"

    @property
    def client_ca_file(self) -> Path:
        """What nats-server verifies client certificates against: broker CA + device root."""
        return self.directory / "client-cas.pem"

    @property
    def issuer_seed_file(self) -> Path:
        return self.directory / "issuer.nk"

    @property
    def issuer_seed(self) -> str:
        return self.issuer_seed_file.read_text().strip()

    @property
    def issuer_public_key(self) -> str:
        return issuer_public_key(self.issuer_seed)


def issuer_public_key(seed: str) -> str:
    pair = nkeys.from_seed(seed.encode())
    try:
        return str(pair.public_key.decode())
    finally:
        pair.wipe()


def new_account_seed() -> str:
    return str(nkeys.encode_seed(secrets.token_bytes(32), nkeys.PREFIX_BYTE_ACCOUNT).decode())


def ensure_broker_pki(directory: Path, server_names: Sequence[str] = ()) -> BrokerPki:
    """The material under ``directory``, made now if any part is missing.

    The broker's certificate names 127.0.0.1 and localhost, plus ``server_names`` (DNS names
    or IP addresses): the host names clients reach nats-server by in a container network or
    a cluster (``nats``, ``nats.outpost.svc.cluster.local``; docs/operations.md)."""
    pki = BrokerPki(Path(directory))
    pki.directory.mkdir(parents=True, exist_ok=True)
    needed = (
        pki.ca_file,
        pki.server_cert,
        pki.service_cert,
        pki.device_root_cert,
        pki.client_ca_file,
        pki.issuer_seed_file,
    )
    if all(p.exists() for p in needed):
        return pki
    now = datetime.now(UTC)
    ca_cert, ca_key = _ca("Outpost dev broker CA", now)
    root_cert, root_key = _ca("Outpost device root", now, path_length=1)
    server_cert, server_key = _leaf(
        ca_cert,
        ca_key,
        "outpost-broker",
        now,
        ExtendedKeyUsageOID.SERVER_AUTH,
        [
            x509.DNSName("localhost"),
            x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
            *(_general_name(n) for n in server_names if n not in ("localhost", "127.0.0.1")),
        ],
    )
    service_cert, service_key = _leaf(
        ca_cert, ca_key, "outpost-service", now, ExtendedKeyUsageOID.CLIENT_AUTH, []
    )
    _write(pki.ca_file, _pem(ca_cert))
    _write(pki.server_cert, _pem(server_cert))
    _write(pki.server_key, _key_pem(server_key))
    _write(pki.service_cert, _pem(service_cert))
    _write(pki.service_key, _key_pem(service_key))
    _write(pki.device_root_cert, _pem(root_cert))
    _write(pki.device_root_key, _key_pem(root_key))
    _write(pki.client_ca_file, _pem(ca_cert) + _pem(root_cert))
    _write(pki.issuer_seed_file, new_account_seed() + "\n")
    return pki


def _general_name(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def _name(cn: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Outpost"),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )


def _ca(
    cn: str, now: datetime, path_length: int = 0
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = pki.ca_certificate(
        _name(cn), key, not_before=now - SKEW, not_after=now + VALIDITY, path_length=path_length
    )
    return cert, key


def _leaf(
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    cn: str,
    now: datetime,
    usage: x509.ObjectIdentifier,
    names: list[x509.GeneralName],
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - SKEW)
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    )
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(ca_key, hashes.SHA256()), key


def _pem(cert: x509.Certificate) -> str:
    return pki.pem(cert)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> str:
    return pki.key_pem(key).decode()


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.replace(tmp, path)
