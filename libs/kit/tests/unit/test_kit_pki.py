"""``outpost_kit.pki``: the CA certificate both the dev broker's material and devices'
organization CAs are built with."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from outpost_kit import pki

pytestmark = pytest.mark.unit

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def test_a_self_signed_and_an_intermediate_ca() -> None:
    root_key = ec.generate_private_key(ec.SECP256R1())
    root = pki.ca_certificate(
        _name("root"), root_key, not_before=NOW, not_after=NOW + timedelta(days=9), path_length=1
    )
    assert root.issuer == root.subject == _name("root")
    root.verify_directly_issued_by(root)
    assert root.extensions.get_extension_for_class(x509.BasicConstraints).value.path_length == 1
    assert root.extensions.get_extension_for_class(x509.KeyUsage).value == pki.CA_KEY_USAGE
    with pytest.raises(x509.ExtensionNotFound):
        root.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier)

    key = ec.generate_private_key(ec.SECP256R1())
    ca = pki.ca_certificate(
        _name("ca"),
        key,
        not_before=NOW,
        not_after=NOW + timedelta(days=1),
        path_length=0,
        issuer=(root, root_key),
    )
    ca.verify_directly_issued_by(root)
    assert ca.issuer == root.subject
    assert (ca.not_valid_before_utc, ca.not_valid_after_utc) == (NOW, NOW + timedelta(days=1))
    aki = ca.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    ski = root.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert aki.key_identifier == ski.digest
    assert x509.load_pem_x509_certificate(pki.pem(ca).encode()) == ca
    loaded = serialization.load_pem_private_key(pki.key_pem(key), password=None)
    assert isinstance(loaded, ec.EllipticCurvePrivateKey)
    assert loaded.private_numbers() == key.private_numbers()
