"""The organizations' certificate authorities and the device-certificate policy.

Pure functions over ``cryptography`` objects (no I/O, no clock: time and serials are passed
in), plus ``CaVault``, which encrypts CA keys at rest with Fernet. The server decides every
field of an issued certificate; from a CSR it takes only the public key, after checking the
CSR's signature, the key's type and strength and that it asks for nothing (ADR 0051).
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from outpost_contracts.errors import AccessDenied, validation_error
from outpost_kit import pki as kit_pki

CA_VALIDITY = timedelta(days=3650)
CLOCK_SKEW = timedelta(minutes=5)  # issued certificates start this much before "now"
ALLOWED_CURVES = (ec.SECP256R1, ec.SECP384R1)
MIN_RSA_BITS = 2048

DevicePublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey


def device_uri(org_id: UUID, device_id: UUID) -> str:
    """The identity a device certificate carries in its SAN (the broker reads it)."""
    return f"urn:outpost:org:{org_id}:device:{device_id}"


def serial_hex(serial: int) -> str:
    return format(serial, "x")


# --- CSR policy -------------------------------------------------------------------------


def check_csr(pem: str, field: str = "csr") -> x509.CertificateSigningRequest:
    """The CSR if it is acceptable; a ``validation_error`` naming ``field`` otherwise."""
    try:
        csr = x509.load_pem_x509_csr(pem.encode())
    except ValueError:
        raise validation_error(field, "is not a PEM certificate signing request") from None
    if not csr.is_signature_valid:
        raise validation_error(field, "its signature does not verify with its public key")
    check_public_key(csr.public_key(), field)
    for ext in csr.extensions:
        value = ext.value
        if isinstance(value, x509.BasicConstraints):
            if value.ca:
                raise validation_error(field, "asks for a CA certificate (CA:TRUE)")
            continue
        if isinstance(value, x509.SubjectAlternativeName):
            raise validation_error(
                field, "asks for subject alternative names: the server chooses the device's"
            )
        name = getattr(ext.oid, "_name", None) or ext.oid.dotted_string
        raise validation_error(field, f"asks for the extension {name}: the server chooses them")
    return csr


def check_public_key(key: object, field: str = "csr") -> DevicePublicKey:
    if isinstance(key, ec.EllipticCurvePublicKey):
        if not isinstance(key.curve, ALLOWED_CURVES):
            raise validation_error(
                field, f"EC curve {key.curve.name} is not accepted (use P-256 or P-384)"
            )
        return key
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < MIN_RSA_BITS:
            raise validation_error(
                field, f"RSA key of {key.key_size} bits is too weak (at least {MIN_RSA_BITS})"
            )
        return key
    raise validation_error(field, "key type is not accepted (use EC P-256/P-384 or RSA ≥ 2048)")


# --- the CA and issuing -----------------------------------------------------------------


def new_ca(
    org_id: UUID,
    now: datetime,
    root: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None = None,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """An EC P-256 CA for one organization's devices (path length 0): signed by the platform
    device ``root`` when given (so the broker can verify its devices), else self-signed."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, str(org_id)),
            x509.NameAttribute(NameOID.COMMON_NAME, f"Outpost device CA {org_id}"),
        ]
    )
    not_after = now + CA_VALIDITY
    if root is not None:
        not_after = min(not_after, root[0].not_valid_after_utc)
    cert = kit_pki.ca_certificate(
        name, key, not_before=now - CLOCK_SKEW, not_after=not_after, path_length=0, issuer=root
    )
    return cert, key


@dataclass(frozen=True)
class Issued:
    certificate: x509.Certificate
    serial: str
    not_before: datetime
    not_after: datetime

    @property
    def pem(self) -> str:
        return self.certificate.public_bytes(serialization.Encoding.PEM).decode()


def issue(
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    csr: x509.CertificateSigningRequest,
    *,
    org_id: UUID,
    device_id: UUID,
    serial: int,
    now: datetime,
    validity: timedelta,
) -> Issued:
    """A client certificate for ``device_id``: every field is the server's; only the public
    key comes from the (already checked) CSR."""
    public = check_public_key(csr.public_key())
    not_before = now - CLOCK_SKEW
    not_after = min(now + validity, ca_cert.not_valid_after_utc)
    ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    cert = (
        x509.CertificateBuilder()
        .subject_name(
            x509.Name(
                [
                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, str(org_id)),
                    x509.NameAttribute(NameOID.COMMON_NAME, str(device_id)),
                ]
            )
        )
        .issuer_name(ca_cert.subject)
        .public_key(public)
        .serial_number(serial)
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.UniformResourceIdentifier(device_uri(org_id, device_id))]
            ),
            critical=False,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    return Issued(cert, serial_hex(serial), not_before, not_after)


# --- renewal ----------------------------------------------------------------------------


def load_certificate(pem: str, field: str = "certificate") -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(pem.encode())
    except ValueError:
        raise validation_error(field, "is not a PEM certificate") from None


def certificate_identity(cert: x509.Certificate) -> tuple[UUID, UUID]:
    """(org id, device id) from a device certificate's subject; access_denied if it has none."""
    try:
        org = cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value
        device = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
        return UUID(str(org)), UUID(str(device))
    except (IndexError, ValueError):
        raise AccessDenied("the certificate is not an Outpost device certificate") from None


def verify_device_certificate(
    ca_cert: x509.Certificate, cert: x509.Certificate, now: datetime
) -> None:
    """access_denied unless ``cert`` was signed by ``ca_cert`` and is within its validity."""
    try:
        cert.verify_directly_issued_by(ca_cert)
    except (ValueError, TypeError, InvalidSignature):
        raise AccessDenied("the certificate was not issued by this organization's CA") from None
    if not cert.not_valid_before_utc <= now < cert.not_valid_after_utc:
        raise AccessDenied("the certificate has expired (provision again with a new token)")


def verify_possession(
    cert: x509.Certificate, csr: x509.CertificateSigningRequest, b64: str
) -> None:
    """access_denied unless ``b64`` is the certificate key's signature over the CSR's DER."""
    try:
        signature = base64.b64decode(b64, validate=True)
    except (binascii.Error, ValueError):
        raise validation_error("signature", "must be base64") from None
    data = csr.public_bytes(serialization.Encoding.DER)
    key = cert.public_key()
    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, data, ec.ECDSA(hashes.SHA256()))
        elif isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, data, padding.PKCS1v15(), hashes.SHA256())
        else:
            raise InvalidSignature
    except InvalidSignature:
        raise AccessDenied(
            "signature: not the current certificate key's signature over the CSR"
        ) from None


# --- keys at rest -----------------------------------------------------------------------


class CaVault:
    """Encrypts CA private keys with Fernet. ``keys`` is one Fernet key or several separated
    by commas: the first encrypts, every one decrypts (rotation: docs/runbook.md)."""

    def __init__(self, keys: str) -> None:
        parts = [k.strip() for k in keys.split(",") if k.strip()]
        if not parts:
            raise ValueError("no CA encryption key")
        self._fernet = MultiFernet([Fernet(k.encode()) for k in parts])

    def seal(self, key: ec.EllipticCurvePrivateKey) -> str:
        return self._fernet.encrypt(kit_pki.key_pem(key)).decode()

    def open(self, sealed: str) -> ec.EllipticCurvePrivateKey:
        try:
            pem = self._fernet.decrypt(sealed.encode())
        except InvalidToken as exc:
            raise RuntimeError("a CA key does not decrypt with the configured keys") from exc
        key = serialization.load_pem_private_key(pem, password=None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        return key

    def rotate(self, sealed: str) -> str:
        """``sealed`` re-encrypted under the first key."""
        return self._fernet.rotate(sealed.encode()).decode()


def pem(cert: x509.Certificate) -> str:
    return kit_pki.pem(cert)
