"""The broker's auth callout without a broker: who a certificate names, what that device may
do, and the JWTs nats-server reads (ADR 0054)."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from uuid import UUID

import nkeys
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from outpost_contracts.errors import AccessDenied
from outpost_devices.adapters import pki
from outpost_devices.adapters.callout import Issuer, parse_request
from outpost_devices.app.broker import (
    device_permissions,
    leaf_identity,
    session_expiry,
)
from outpost_kit.broker_pki import issuer_public_key, new_account_seed

pytestmark = pytest.mark.unit

ORG = UUID("01900000-0000-7000-8000-000000000001")
DEVICE = UUID("01900000-0000-7000-8000-000000000002")
OTHER = UUID("01900000-0000-7000-8000-000000000003")
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _device_cert(root: bool = True) -> tuple[x509.Certificate, x509.Certificate]:
    device_root = pki.new_ca(UUID(int=0), NOW) if root else None
    ca_cert, ca_key = pki.new_ca(ORG, NOW, device_root)
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([]))
        .sign(key, hashes.SHA256())
    )
    issued = pki.issue(
        ca_cert,
        ca_key,
        csr,
        org_id=ORG,
        device_id=DEVICE,
        serial=42,
        now=NOW,
        validity=timedelta(days=30),
    )
    return issued.certificate, ca_cert


def _unjwt(token: str) -> dict:  # type: ignore[type-arg]
    part = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))  # type: ignore[no-any-return]


def test_a_device_may_publish_its_telemetry_and_acks_and_subscribe_to_its_commands() -> None:
    perms = device_permissions(ORG, DEVICE)
    assert perms == {
        "pub": {"allow": [f"outpost.tel.{ORG}.{DEVICE}", f"outpost.cmd.{ORG}.{DEVICE}.ack"]},
        "sub": {"allow": [f"outpost.cmd.{ORG}.{DEVICE}"]},
    }
    flat = json.dumps(perms)
    assert "*" not in flat and ">" not in flat and "_INBOX" not in flat and "$JS" not in flat
    assert str(OTHER) not in flat


def test_the_identity_is_the_certificates_and_the_chain_is_signed_by_the_root() -> None:
    cert, ca = _device_cert()
    leaf, org, device = leaf_identity([pki.pem(cert), pki.pem(ca)])
    assert (org, device) == (ORG, DEVICE) and leaf == cert
    pki.verify_device_certificate(ca, cert, NOW)  # the org CA still signs the device
    assert ca.issuer != ca.subject  # an intermediate under the platform device root


@pytest.mark.parametrize("chain", [[], ["not a certificate"]])
def test_no_or_unreadable_certificate_is_refused(chain: list[str]) -> None:
    with pytest.raises(AccessDenied):
        leaf_identity(chain)


def test_a_certificate_whose_san_names_another_device_is_refused() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name(
        [
            x509.NameAttribute(x509.NameOID.ORGANIZATION_NAME, str(ORG)),
            x509.NameAttribute(x509.NameOID.COMMON_NAME, str(DEVICE)),
        ]
    )
    odd = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(7)
        .not_valid_before(NOW)
        .not_valid_after(NOW + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.UniformResourceIdentifier(pki.device_uri(ORG, OTHER))]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    with pytest.raises(AccessDenied):
        leaf_identity([pki.pem(odd)])


def test_a_session_ends_at_the_certificates_end_or_after_the_session_length() -> None:
    hour = timedelta(hours=1)
    assert session_expiry(NOW + timedelta(days=1), NOW, hour) == NOW + hour
    assert session_expiry(NOW + timedelta(minutes=5), NOW, hour) == NOW + timedelta(minutes=5)


def _request(chain: list[str]) -> str:
    claims = {
        "nats": {
            "user_nkey": "UABC",
            "server_id": {"id": "NSERVER", "name": "outpost-dev"},
            "client_info": {"kind": "Client"},
            "client_tls": {"version": "1.3", "certs": chain[:1], "verified_chains": [chain]},
            "type": "authorization_request",
        }
    }
    body = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"e30.{body}.sig"


def test_the_request_gives_the_verified_chain_and_the_response_is_signed_by_the_issuer() -> None:
    cert, ca = _device_cert()
    request = parse_request(_request([pki.pem(cert), pki.pem(ca)]))
    assert request.user_nkey == "UABC" and request.server_id == "NSERVER"
    assert request.chain_pems == [pki.pem(cert), pki.pem(ca)]

    seed = new_account_seed()
    issuer = Issuer(seed)
    assert issuer.public_key == issuer_public_key(seed) and issuer.public_key.startswith("A")
    user = issuer.user(request, "device:x", device_permissions(ORG, DEVICE), NOW)
    answer = issuer.response(request, jwt=user)
    claims = _unjwt(answer)
    assert claims["sub"] == "UABC" and claims["aud"] == "NSERVER"
    assert claims["iss"] == issuer.public_key
    assert claims["nats"]["type"] == "authorization_response"
    inner = _unjwt(claims["nats"]["jwt"])
    assert inner["sub"] == "UABC" and inner["aud"] == "$G" and inner["exp"] == int(NOW.timestamp())
    assert inner["nats"]["pub"] == device_permissions(ORG, DEVICE)["pub"]
    header, payload, signature = answer.split(".")
    pair = nkeys.from_seed(seed.encode())
    raw = base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4))
    assert pair.verify(f"{header}.{payload}".encode(), raw)

    refused = _unjwt(issuer.response(request, error="the certificate is revoked"))
    assert refused["nats"] == {
        "type": "authorization_response",
        "version": 2,
        "error": "the certificate is revoked",
    }


def test_a_malformed_request_is_rejected() -> None:
    with pytest.raises(ValueError):
        parse_request("garbage")
