"""Devices: registration tokens, provisioning (CSR → certificate from the organization's CA),
certificate renewal, listing and revocation (docs/api.md, "Registration and provisioning")."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Annotated
from uuid import UUID

import msgspec

from outpost_contracts.base import Contract, Empty, Event, Request, whole, wire_tag
from outpost_contracts.devices import DeviceName
from outpost_contracts.query import ListQuery, Page
from outpost_contracts.rpc import Operation

SERVICE = "devices"

# PEM texts are small; these bounds keep a request from carrying megabytes of "CSR".
Pem = Annotated[str, msgspec.Meta(min_length=1, max_length=16_384)]
MAX_TOKEN_TTL_SECONDS = 30 * 24 * 3600


class TokenStatus(enum.StrEnum):
    ACTIVE = "ACTIVE"
    USED = "USED"
    REVOKED = "REVOKED"
    EXPIRED = "EXPIRED"


# --- events -----------------------------------------------------------------------------


class RegistrationTokenCreated(
    Event, tag=wire_tag(SERVICE, "RegistrationTokenCreated", 1), kw_only=True, frozen=True
):
    """A one-time token to provision ``device_id``. The secret and its hash are not here."""

    device_id: UUID
    device_name: str
    expires_at: datetime


class RegistrationTokenRedeemed(
    Event, tag=wire_tag(SERVICE, "RegistrationTokenRedeemed", 1), kw_only=True, frozen=True
):
    device_id: UUID
    certificate_serial: str


class RegistrationTokenRevoked(
    Event, tag=wire_tag(SERVICE, "RegistrationTokenRevoked", 1), kw_only=True, frozen=True
):
    """The token can no longer be redeemed."""


class DeviceProvisioned(
    Event, tag=wire_tag(SERVICE, "DeviceProvisioned", 1), kw_only=True, frozen=True
):
    """The device redeemed a registration token and holds a certificate (REGISTERED →
    PROVISIONED)."""

    certificate_id: UUID
    serial: str  # lowercase hex
    not_before: datetime
    not_after: datetime
    token_id: UUID | None = None


class DeviceCertificateRenewed(
    Event, tag=wire_tag(SERVICE, "DeviceCertificateRenewed", 1), kw_only=True, frozen=True
):
    """A new certificate for a device that proved it holds a current one; the previous one
    stays valid until it expires or is revoked."""

    certificate_id: UUID
    serial: str
    not_before: datetime
    not_after: datetime
    previous_serial: str


class DeviceCertificateRevoked(
    Event, tag=wire_tag(SERVICE, "DeviceCertificateRevoked", 1), kw_only=True, frozen=True
):
    serial: str
    reason: str = "revoked"


EVENT_TYPES: tuple[type[Event], ...] = (
    RegistrationTokenCreated,
    RegistrationTokenRedeemed,
    RegistrationTokenRevoked,
    DeviceProvisioned,
    DeviceCertificateRenewed,
    DeviceCertificateRevoked,
)

# --- requests ---------------------------------------------------------------------------


class CreateRegistrationToken(Request, kw_only=True, frozen=True):
    """``ttl_seconds`` shortens the token's life below the deployment's setting (never
    lengthens it)."""

    device_name: DeviceName
    ttl_seconds: Annotated[int, msgspec.Meta(ge=1, le=MAX_TOKEN_TTL_SECONDS)] | None = None


class ListRegistrationTokens(Request, kw_only=True, frozen=True):
    query: ListQuery = msgspec.field(default_factory=ListQuery)


class RevokeRegistrationToken(Request, kw_only=True, frozen=True):
    id: UUID


class Provision(Request, kw_only=True, frozen=True):
    """``POST /devices/provision``: no credential; the token is one."""

    token: Annotated[str, msgspec.Meta(min_length=1, max_length=256)]
    csr: Pem


class RenewCertificate(Request, kw_only=True, frozen=True):
    """``POST /devices/certificates/renew``: no credential. ``certificate`` is the device's
    current certificate (PEM), ``csr`` the new request (PEM) and ``signature`` the current
    key's signature over the CSR's DER (base64; ECDSA with SHA-256 for EC keys, PKCS#1 v1.5
    with SHA-256 for RSA keys): proof that the caller holds the current key."""

    certificate: Pem
    csr: Pem
    signature: Annotated[str, msgspec.Meta(min_length=1, max_length=2048)]


class GetDeviceCa(Request, kw_only=True, frozen=True):
    pass


class ListDeviceCertificates(Request, kw_only=True, frozen=True):
    device_id: UUID
    query: ListQuery = msgspec.field(default_factory=ListQuery)


class RevokeDeviceCertificate(Request, kw_only=True, frozen=True):
    device_id: UUID
    serial: Annotated[
        str, msgspec.Meta(min_length=1, max_length=64, pattern=whole(r"[0-9a-fA-F]+"))
    ]


# --- replies ----------------------------------------------------------------------------


class RegistrationTokenIssued(Contract, kw_only=True, frozen=True):
    """The reply to a token's creation: the only time ``token`` is shown."""

    id: UUID
    token: str
    device_id: UUID
    device_name: str
    provision_endpoint: str
    expires_at: datetime
    created_at: datetime
    object: str = "registration_token"


class RegistrationTokenView(Contract, kw_only=True, frozen=True):
    id: UUID
    device_id: UUID
    device_name: str
    status: TokenStatus
    created_at: datetime
    expires_at: datetime
    used_at: datetime | None = None
    revoked_at: datetime | None = None
    object: str = "registration_token"


class Provisioned(Contract, kw_only=True, frozen=True):
    """What a device needs to connect: its certificate, the CA chain its certificate chains
    to (PEM, the organization's CA), the trust anchors of the broker's server certificate
    (``broker_ca_chain``, PEM: what the device verifies the broker with, so nothing reaches
    it out of band; empty when the deployment names none, i.e. the broker's certificate is
    publicly trusted), the broker URLs and its subjects."""

    device_id: UUID
    certificate: str
    ca_chain: str
    serial: str
    not_after: datetime
    nats_url: str
    mqtt_url: str
    telemetry_subject: str
    command_subject: str
    broker_ca_chain: str = ""  # decision 78


class CertificateAuthorityView(Contract, kw_only=True, frozen=True):
    certificate: str
    not_after: datetime
    object: str = "certificate_authority"


class CertificateView(Contract, kw_only=True, frozen=True):
    id: UUID
    serial: str
    device_id: UUID
    not_before: datetime
    not_after: datetime
    created_at: datetime
    revoked_at: datetime | None = None
    object: str = "certificate"


CREATE_REGISTRATION_TOKEN = Operation(
    SERVICE, "CreateRegistrationToken", CreateRegistrationToken, RegistrationTokenIssued
)
LIST_REGISTRATION_TOKENS = Operation(
    SERVICE, "ListRegistrationTokens", ListRegistrationTokens, Page[RegistrationTokenView]
)
REVOKE_REGISTRATION_TOKEN = Operation(
    SERVICE, "RevokeRegistrationToken", RevokeRegistrationToken, Empty
)
PROVISION = Operation(SERVICE, "Provision", Provision, Provisioned)
RENEW_CERTIFICATE = Operation(SERVICE, "RenewCertificate", RenewCertificate, Provisioned)
GET_DEVICE_CA = Operation(SERVICE, "GetDeviceCa", GetDeviceCa, CertificateAuthorityView)
LIST_DEVICE_CERTIFICATES = Operation(
    SERVICE, "ListDeviceCertificates", ListDeviceCertificates, Page[CertificateView]
)
REVOKE_DEVICE_CERTIFICATE = Operation(
    SERVICE, "RevokeDeviceCertificate", RevokeDeviceCertificate, CertificateView
)
