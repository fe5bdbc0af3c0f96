"""Registration tokens and provisioning through the gateway, as an operator and a device
would do it (docs/api.md, "Registration and provisioning")."""

from __future__ import annotations

import base64
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

pytestmark = pytest.mark.e2e

TOKENS = "/api/v1/devices/registration/tokens"
PROVISION = "/api/v1/devices/provision"
RENEW = "/api/v1/devices/certificates/renew"


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _csr(key: ec.EllipticCurvePrivateKey) -> str:
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "please-make-me-ca")]))
        .sign(key, hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.PEM).decode()


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _gone(resp: httpx.Response) -> None:
    assert resp.status_code == 410, resp.text
    assert resp.json()["type"] == "gone"


def _token(http: httpx.Client, auth: dict[str, str], name: str, **more: Any) -> dict[str, Any]:
    resp = http.post(TOKENS, json={"deviceName": name, **more}, headers=auth)
    assert resp.status_code == 201, resp.text
    return dict(resp.json())


def _verify(cert_pem: str, chain_pem: str, org_id: str, device_id: str) -> x509.Certificate:
    cert = x509.load_pem_x509_certificate(cert_pem.encode())
    [ca] = x509.load_pem_x509_certificates(chain_pem.encode())
    cert.verify_directly_issued_by(ca)
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == device_id
    assert cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == org_id
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == [
        f"urn:outpost:org:{org_id}:device:{device_id}"
    ]
    return cert


def test_provision_replay_renew_revoke_and_decommission(
    tenants: Any, http: httpx.Client, platform: dict[str, Any]
) -> None:
    org = tenants.org("provision")
    auth = bearer(tenants.key(org["id"])["key"])
    issued = _token(http, auth, "sensor-1")
    assert issued["token"].startswith("rt_") and issued["deviceName"] == "sensor-1"
    assert issued["provisionEndpoint"] == platform["gatewayUrl"] + PROVISION
    device = http.get(f"/api/v1/devices/{issued['deviceId']}", headers=auth).json()
    assert device["name"] == "sensor-1" and device["status"] == "REGISTERED"

    key = _new_key()
    resp = http.post(PROVISION, json={"token": issued["token"], "csr": _csr(key)})
    assert resp.status_code == 201, resp.text
    body = resp.json()
    device_id, org_id = issued["deviceId"], org["id"]
    assert body["deviceId"] == device_id
    cert = _verify(body["certificate"], body["caChain"], org_id, device_id)
    assert body["telemetrySubject"] == f"outpost.tel.{org_id}.{device_id}"
    assert body["commandSubject"] == f"outpost.cmd.{org_id}.{device_id}"
    assert body["natsUrl"] == platform["natsUrl"] and body["mqttUrl"] == platform["mqttUrl"]
    assert body["brokerCaChain"] == Path(platform["brokerCaFile"]).read_text()
    ca = http.get("/api/v1/devices/ca", headers=auth)
    assert ca.status_code == 200 and ca.json()["certificate"] == body["caChain"]
    assert http.get(f"/api/v1/devices/{device_id}", headers=auth).json()["status"] == (
        "PROVISIONED"
    )

    _gone(http.post(PROVISION, json={"token": issued["token"], "csr": _csr(_new_key())}))

    # Renewal: the new CSR signed by the current key; the old certificate stays valid.
    new_key = _new_key()
    new_csr = _csr(new_key)
    der = x509.load_pem_x509_csr(new_csr.encode()).public_bytes(serialization.Encoding.DER)
    signature = base64.b64encode(key.sign(der, ec.ECDSA(hashes.SHA256()))).decode()
    renewal = {"certificate": body["certificate"], "csr": new_csr, "signature": signature}
    wrong = base64.b64encode(new_key.sign(der, ec.ECDSA(hashes.SHA256()))).decode()
    refused = http.post(RENEW, json={**renewal, "signature": wrong})
    assert refused.status_code == 403, refused.text
    renewed = http.post(RENEW, json=renewal)
    assert renewed.status_code == 201, renewed.text
    new_cert = _verify(renewed.json()["certificate"], body["caChain"], org_id, device_id)
    # Renewal tells the device the broker's trust anchors too (decision 78).
    assert renewed.json()["brokerCaChain"] == body["brokerCaChain"]
    assert new_cert.serial_number != cert.serial_number

    certs_url = f"/api/v1/devices/{device_id}/certificates"
    listed = http.get(certs_url, headers=auth).json()
    assert listed["object"] == "list" and len(listed["data"]) == 2
    old_serial = format(cert.serial_number, "x")
    assert listed["data"][0]["serial"] == old_serial
    assert all(c["revokedAt"] is None for c in listed["data"])
    revoked = http.post(f"{certs_url}/{old_serial}/revoke", headers=auth)
    assert revoked.status_code == 200, revoked.text
    assert revoked.json()["revokedAt"] is not None
    assert http.post(RENEW, json=renewal).status_code == 403  # a revoked certificate
    missing = http.post(f"{certs_url}/abcdef/revoke", headers=auth)
    assert missing.status_code == 404

    # Decommissioning revokes every certificate.
    assert http.delete(f"/api/v1/devices/{device_id}", headers=auth).status_code == 204
    after = http.get(certs_url, headers=auth).json()["data"]
    assert len(after) == 2 and all(c["revokedAt"] is not None for c in after)

    # The token list shows no secret; the events are in the audit log.
    tokens = http.get(TOKENS, headers=auth, params={"include": "totalCount"}).json()
    assert tokens["totalCount"] == 1 and tokens["data"][0]["status"] == "USED"
    assert "token" not in tokens["data"][0] and "tokenHash" not in tokens["data"][0]
    types = {
        e["type"]
        for e in http.get("/api/v1/audit-log", params={"limit": 100}, headers=auth).json()["data"]
    }
    assert {
        "devices.RegistrationTokenCreated.v1",
        "devices.RegistrationTokenRedeemed.v1",
        "devices.DeviceProvisioned.v1",
        "devices.DeviceCertificateRenewed.v1",
        "devices.DeviceCertificateRevoked.v1",
    } <= types


def test_expired_revoked_and_unknown_tokens_are_gone(tenants: Any, http: httpx.Client) -> None:
    org = tenants.org("tokens")
    auth = bearer(tenants.key(org["id"])["key"])
    csr = _csr(_new_key())
    short = _token(http, auth, "short-lived", ttlSeconds=1)
    revoked = _token(http, auth, "revoked")
    assert http.delete(f"{TOKENS}/{revoked['id']}", headers=auth).status_code == 204
    _gone(http.post(PROVISION, json={"token": revoked["token"], "csr": csr}))
    time.sleep(1.2)
    _gone(http.post(PROVISION, json={"token": short["token"], "csr": csr}))
    _gone(http.post(PROVISION, json={"token": short["token"] + "x", "csr": csr}))
    _gone(http.post(PROVISION, json={"token": "nonsense", "csr": csr}))
    statuses = {t["deviceName"]: t["status"] for t in http.get(TOKENS, headers=auth).json()["data"]}
    assert statuses == {"short-lived": "EXPIRED", "revoked": "REVOKED"}
    # a bad CSR is a validation_error and leaves the token unspent
    good = _token(http, auth, "short-lived")  # a second token for the same device
    assert good["deviceId"] == short["deviceId"]
    bad = http.post(PROVISION, json={"token": good["token"], "csr": "not a csr"})
    assert bad.status_code == 400 and bad.json()["type"] == "validation_error", bad.text
    ok = http.post(PROVISION, json={"token": good["token"], "csr": csr})
    assert ok.status_code == 201, ok.text


def test_fifty_concurrent_redemptions_issue_one_certificate(
    tenants: Any, http: httpx.Client
) -> None:
    org = tenants.org("race")
    auth = bearer(tenants.key(org["id"])["key"])
    issued = _token(http, auth, "racer")
    csr = _csr(_new_key())
    with ThreadPoolExecutor(max_workers=50) as pool:
        statuses = list(
            pool.map(
                lambda _: (
                    http.post(
                        PROVISION, json={"token": issued["token"], "csr": csr}, timeout=30
                    ).status_code
                ),
                range(50),
            )
        )
    # Exactly one redemption wins; every other is refused: 410 for a spent token or, once the
    # token's failures pass the public routes' backoff (decision 75), 429, whichever the
    # scheduling of the fifty gives.
    assert statuses.count(201) == 1, statuses
    assert set(statuses) - {201} <= {410, 429}, statuses
    certs = http.get(f"/api/v1/devices/{issued['deviceId']}/certificates", headers=auth).json()
    assert len(certs["data"]) == 1
