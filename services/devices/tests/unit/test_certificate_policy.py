"""The certificate policy: what a CSR may ask for, and what the server puts in a device
certificate whatever the CSR says (ADR 0051)."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from uuid import UUID

import pytest
from cryptography import x509
from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from outpost_contracts.errors import AccessDenied, ValidationFailed
from outpost_devices.adapters import pki

pytestmark = pytest.mark.unit

ORG = UUID("01900000-0000-7000-8000-000000000001")
DEVICE = UUID("01900000-0000-7000-8000-000000000002")
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _csr(
    key: object | None = None,
    *,
    extensions: list[tuple[x509.ExtensionType, bool]] = (),  # type: ignore[assignment]
    cn: str = "whatever-the-device-says",
) -> str:
    key = key or ec.generate_private_key(ec.SECP256R1())
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name(
            [
                x509.NameAttribute(NameOID.COMMON_NAME, cn),
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "evil-org"),
            ]
        )
    )
    for ext, critical in extensions:
        builder = builder.add_extension(ext, critical=critical)
    algorithm = None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    csr = builder.sign(key, algorithm)  # type: ignore[arg-type]
    return csr.public_bytes(serialization.Encoding.PEM).decode()


def _refused(pem: str, words: str) -> None:
    with pytest.raises(ValidationFailed) as info:
        pki.check_csr(pem)
    assert words in info.value.message, info.value.message
    assert info.value.fields[0].name == "csr"


def test_accepts_p256_p384_and_rsa_2048() -> None:
    for key in (
        ec.generate_private_key(ec.SECP256R1()),
        ec.generate_private_key(ec.SECP384R1()),
        rsa.generate_private_key(public_exponent=65537, key_size=2048),
    ):
        pki.check_csr(_csr(key))
    # CA:FALSE asks for nothing the server would not do anyway
    pki.check_csr(_csr(extensions=[(x509.BasicConstraints(ca=False, path_length=None), True)]))


def test_refuses_a_csr_whose_signature_does_not_verify() -> None:
    good = x509.load_pem_x509_csr(_csr().encode())
    der = bytearray(good.public_bytes(serialization.Encoding.DER))
    der[-3] ^= 0xFF  # inside the signature
    pem = (
        "-----BEGIN CERTIFICATE REQUEST-----\n"
        + base64.encodebytes(bytes(der)).decode()
        + "-----END CERTIFICATE REQUEST-----\n"
    )
    _refused(pem, "signature does not verify")


def test_refuses_garbage() -> None:
    _refused("not a csr", "not a PEM certificate signing request")


def test_refuses_ca_true() -> None:
    _refused(_csr(extensions=[(x509.BasicConstraints(ca=True, path_length=None), True)]), "CA:TRUE")


def test_refuses_extra_sans_and_other_extensions() -> None:
    san = x509.SubjectAlternativeName([x509.DNSName("broker.example.com")])
    _refused(_csr(extensions=[(san, False)]), "subject alternative names")
    eku = x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH])
    _refused(_csr(extensions=[(eku, False)]), "extension")


def test_refuses_weak_rsa_wrong_curve_and_other_key_types() -> None:
    _refused(_csr(rsa.generate_private_key(public_exponent=65537, key_size=1024)), "1024 bits")
    _refused(_csr(ec.generate_private_key(ec.SECP256K1())), "secp256k1")
    _refused(_csr(ec.generate_private_key(ec.SECP521R1())), "secp521r1")
    _refused(_csr(ed25519.Ed25519PrivateKey.generate()), "key type")


def _issue(csr_pem: str) -> tuple[x509.Certificate, x509.Certificate, pki.Issued]:
    ca_cert, ca_key = pki.new_ca(ORG, NOW)
    issued = pki.issue(
        ca_cert,
        ca_key,
        pki.check_csr(csr_pem),
        org_id=ORG,
        device_id=DEVICE,
        serial=0x1234ABCD,
        now=NOW,
        validity=timedelta(days=30),
    )
    return ca_cert, issued.certificate, issued


def test_issued_certificate_fields_are_the_servers() -> None:
    ca_cert, cert, issued = _issue(_csr(cn="i-am-the-ca"))
    cert.verify_directly_issued_by(ca_cert)
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == str(DEVICE)
    assert cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == str(ORG)
    assert cert.issuer == ca_cert.subject
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == [
        f"urn:outpost:org:{ORG}:device:{DEVICE}"
    ]
    assert len(list(san)) == 1
    bc = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert bc.critical and bc.value.ca is False
    ku = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert ku.digital_signature and not ku.key_cert_sign and not ku.crl_sign
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert cert.not_valid_after_utc == NOW + timedelta(days=30)
    assert cert.not_valid_before_utc <= NOW
    assert cert.serial_number == 0x1234ABCD and issued.serial == "1234abcd"
    ca_bc = ca_cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    assert ca_bc.ca and ca_bc.path_length == 0
    assert isinstance(ca_cert.public_key(), ec.EllipticCurvePublicKey)


def test_renewal_needs_the_current_keys_signature_over_the_csr() -> None:
    device_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert, cert, _issued = _issue(_csr(device_key))
    pki.verify_device_certificate(ca_cert, cert, NOW)
    assert pki.certificate_identity(cert) == (ORG, DEVICE)
    new_csr = pki.check_csr(_csr())
    der = new_csr.public_bytes(serialization.Encoding.DER)
    good = base64.b64encode(device_key.sign(der, ec.ECDSA(hashes.SHA256()))).decode()
    pki.verify_possession(cert, new_csr, good)
    other = ec.generate_private_key(ec.SECP256R1())
    bad = base64.b64encode(other.sign(der, ec.ECDSA(hashes.SHA256()))).decode()
    with pytest.raises(AccessDenied):
        pki.verify_possession(cert, new_csr, bad)
    with pytest.raises(AccessDenied):
        pki.verify_device_certificate(ca_cert, cert, NOW + timedelta(days=31))
    other_ca, _key = pki.new_ca(ORG, NOW)
    with pytest.raises(AccessDenied):
        pki.verify_device_certificate(other_ca, cert, NOW)


def test_ca_keys_are_sealed_and_rotate_with_multifernet() -> None:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    _cert, key = pki.new_ca(ORG, NOW)
    sealed = pki.CaVault(old).seal(key)
    assert b"PRIVATE" not in sealed.encode()
    both = pki.CaVault(f"{new},{old}")
    assert both.open(sealed).private_numbers() == key.private_numbers()
    rotated = both.rotate(sealed)
    assert pki.CaVault(new).open(rotated).private_numbers() == key.private_numbers()
    with pytest.raises(RuntimeError):
        pki.CaVault(new).open(sealed)
