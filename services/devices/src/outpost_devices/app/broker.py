"""The broker's auth callout, the decision: which device a connection is and what it may do.

nats-server has already verified the TLS client certificate up to the platform device root
(the chain the device presented: its certificate, then its organization's CA). Here the
devices service checks what only it knows: the chain ends in *this organization's* CA, the
certificate is one it issued to that device, not revoked, not expired, the device is not
decommissioned and its organization not suspended. The answer is the device's permissions:
publish on its telemetry subject and its command-ack subject, subscribe to its command
subject; nothing else (no ``_INBOX``, no JetStream API). Organization and device come from
the certificate only.

An integration (issue 23, ADR 0097) connects with the broker user and password identity
issued it: the password's SHA-256 is compared (constant time) with the one identity's events
carried, and the answer is ``integrations.permissions``: pull from and acknowledge on its own
consumers of the PUBLIC stream, its own inboxes; no publish.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from cryptography import x509

from outpost_contracts import integrations, subjects
from outpost_contracts.devices import DeviceStatus
from outpost_contracts.errors import AccessDenied
from outpost_devices.adapters import pki
from outpost_devices.app.ports import DevicesReads


@dataclass(frozen=True)
class DeviceSession:
    """An admitted connection: who it is, what it may do, until when."""

    org_id: UUID
    device_id: UUID
    serial: str
    expires: datetime

    @property
    def name(self) -> str:
        # The broker user of its connections; presence reads the organization from it.
        return f"device:{self.org_id}:{self.device_id}"

    def permissions(self) -> dict[str, Any]:
        return device_permissions(self.org_id, self.device_id)


def device_permissions(org_id: UUID, device_id: UUID) -> dict[str, Any]:
    """The NATS permissions of one device (MQTT topics map onto the same subjects)."""
    return {
        "pub": {
            "allow": [
                subjects.telemetry(org_id, device_id),
                subjects.command_ack(org_id, device_id),
            ]
        },
        "sub": {"allow": [subjects.command(org_id, device_id)]},
    }


def leaf_identity(chain_pems: list[str]) -> tuple[x509.Certificate, UUID, UUID]:
    """The presented certificate and the (organization, device) it names: the subject's O and
    CN, which must agree with its SAN URI. access_denied for anything else."""
    if not chain_pems:
        raise AccessDenied("no client certificate: devices connect with their certificate")
    try:
        leaf = x509.load_pem_x509_certificate(chain_pems[0].encode())
    except ValueError:
        raise AccessDenied("the client certificate does not parse") from None
    org_id, device_id = pki.certificate_identity(leaf)
    try:
        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        uris = san.get_values_for_type(x509.UniformResourceIdentifier)
    except x509.ExtensionNotFound:
        uris = []
    if uris != [pki.device_uri(org_id, device_id)]:
        raise AccessDenied("the certificate's subject and SAN do not name the same device")
    return leaf, org_id, device_id


def session_expiry(not_after: datetime, now: datetime, session: timedelta) -> datetime:
    """A connection is re-checked at least every ``session`` (nats-server closes it when its
    user JWT expires and the device reconnects through the callout again), and never
    outlives its certificate."""
    return min(not_after, now + session)


class CaCache:
    """Parsed organization CA certificates, parsed again only when the stored PEM changes."""

    def __init__(self) -> None:
        self._by_org: dict[UUID, tuple[str, x509.Certificate]] = {}

    def certificate(self, org_id: UUID, pem: str) -> x509.Certificate:
        found = self._by_org.get(org_id)
        if found is None or found[0] != pem:
            found = (pem, x509.load_pem_x509_certificate(pem.encode()))
            self._by_org[org_id] = found
        return found[1]


async def authorize(
    reads: DevicesReads,
    cas: CaCache,
    chain_pems: list[str],
    now: datetime,
    session: timedelta,
) -> DeviceSession:
    """The session of the device presenting ``chain_pems``; access_denied otherwise."""
    leaf, org_id, device_id = leaf_identity(chain_pems)
    serial = pki.serial_hex(leaf.serial_number)
    found = await reads.admission(org_id, serial, device_id)  # one round trip
    if found.ca_pem is None:
        raise AccessDenied("the organization has no device CA")
    if found.suspended:
        raise AccessDenied("the organization is suspended")
    pki.verify_device_certificate(cas.certificate(org_id, found.ca_pem), leaf, now)
    if found.not_after is None:
        raise AccessDenied("the certificate was not issued to this device")
    if found.revoked_at is not None:
        raise AccessDenied("the certificate is revoked")
    if found.not_after <= now:
        raise AccessDenied("the certificate has expired")
    if found.status is None or found.status == DeviceStatus.DECOMMISSIONED:
        raise AccessDenied("the device is decommissioned")
    return DeviceSession(org_id, device_id, serial, session_expiry(found.not_after, now, session))


@dataclass(frozen=True)
class IntegrationSession:
    """An admitted integration connection (ADR 0097)."""

    org_id: UUID
    integration_id: UUID
    consumers: tuple[str, ...]
    expires: datetime

    @property
    def name(self) -> str:
        # Not ``device:…``: presence leaves it alone.
        return f"integration:{self.org_id}:{self.integration_id}"

    def permissions(self) -> dict[str, Any]:
        return integrations.permissions(self.integration_id, self.consumers)


def password_hash(password: str) -> str:
    return hashlib.sha256(password.encode()).hexdigest()


async def authorize_integration(
    reads: DevicesReads,
    user: str,
    password: str,
    now: datetime,
    session: timedelta,
    heard_hash: str | None = None,
) -> IntegrationSession:
    """The session of the integration ``user`` names, if ``password`` is its current one;
    access_denied otherwise (the same answer for an unknown user and a wrong password).
    ``heard_hash``: a rotation's new hash this replica heard before its table has it."""
    integration_id = integrations.integration_of(user)
    found = None if integration_id is None else await reads.integration(integration_id)
    expected = found.password_hash if found is not None else "0" * 64
    if found is not None and heard_hash is not None:
        expected = heard_hash
    matches = hmac.compare_digest(password_hash(password), expected)
    if found is None or integration_id is None or not matches or found.user != user:
        raise AccessDenied("unknown integration or wrong password")
    if found.revoked:
        raise AccessDenied("the integration is revoked")
    if found.suspended:
        raise AccessDenied("the organization is suspended")
    return IntegrationSession(found.org_id, integration_id, found.consumers, now + session)
