"""Provisioning use cases: registration tokens, provisioning, renewal, certificates, the CA.

The token secret is ``rt_<org id hex>_<random>``: the organization in it lets the public
provisioning route open a transaction in that tenant (FORCEd RLS, no bypass); only its
SHA-256 is stored. Redemption is one guarded UPDATE, so of any number of concurrent
redemptions exactly one wins (ADR 0051)."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import msgspec
from cryptography import x509

from outpost_contracts import provisioning as api
from outpost_contracts import subjects
from outpost_contracts.base import Empty
from outpost_contracts.devices import CreateDevice, DeviceStatus
from outpost_contracts.envelope import PLATFORM_ORG_ID, Principal, PrincipalKind, RequestContext
from outpost_contracts.errors import (
    AccessDenied,
    Conflict,
    Gone,
    NotFound,
    ServiceUnavailable,
    ValidationFailed,
)
from outpost_contracts.query import Page
from outpost_contracts.rpc import Operation
from outpost_devices.adapters import pki
from outpost_devices.app.aggregates import DEVICES, REGISTRATION_TOKENS
from outpost_devices.app.ports import DeviceRecords, ProvisioningRecords
from outpost_devices.domain import devices, registration_tokens
from outpost_kit import ids
from outpost_kit.aggregate import Taken

PROVISION_PATH = "/api/v1/devices/provision"
TOKEN_PREFIX = "rt_"


@dataclass(frozen=True)
class ProvisioningConfig:
    vault: pki.CaVault | None
    token_ttl: timedelta = timedelta(hours=24)
    certificate_validity: timedelta = timedelta(days=30)
    public_api_url: str = ""
    nats_url: str = ""
    mqtt_url: str = ""
    # PEM trust anchors of the broker's server certificate, told to every device (decision 78).
    broker_ca_chain: str = ""
    # The platform device root that signs new organization CAs (None: self-signed CAs,
    # which the broker cannot verify; ADR 0054).
    device_root: tuple[x509.Certificate, Any] | None = None


def _tenant(ctx: RequestContext) -> None:
    if ctx.org_id == PLATFORM_ORG_ID:
        raise ValidationFailed("devices belong to an organization: name it with X-Organization")


def _vault(deps: Any) -> pki.CaVault:
    vault = deps.provisioning.vault
    if vault is None:
        raise ServiceUnavailable(
            "provisioning is not configured (OUTPOST_DEVICES_CA_ENCRYPTION_KEY is not set)"
        )
    return vault  # type: ignore[no-any-return]


def new_token(org_id: UUID) -> str:
    return f"{TOKEN_PREFIX}{org_id.hex}_{secrets.token_urlsafe(32)}"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def token_org(token: str) -> UUID:
    """The organization a token names; ``gone`` for anything that is not a token."""
    parts = token.split("_")
    if len(parts) < 3 or parts[0] + "_" != TOKEN_PREFIX:
        raise Gone(registration_tokens.GONE_MESSAGE)
    try:
        return UUID(hex=parts[1])
    except ValueError:
        raise Gone(registration_tokens.GONE_MESSAGE) from None


@dataclass(frozen=True)
class _Ca:
    certificate: x509.Certificate
    sealed_key: str

    @property
    def pem(self) -> str:
        return pki.pem(self.certificate)


async def _load_ca(tx: ProvisioningRecords) -> _Ca | None:
    stored = await tx.ca()
    if stored is None:
        return None
    certificate = x509.load_pem_x509_certificate(stored.certificate_pem.encode())
    return _Ca(certificate, stored.sealed_key)


async def _ensure_ca(
    tx: ProvisioningRecords, vault: pki.CaVault, org_id: UUID, now: datetime, root: Any = None
) -> _Ca:
    """The organization's CA, made on first need (a concurrent maker's wins)."""
    ca = await _load_ca(tx)
    if ca is not None:
        return ca
    cert, key = pki.new_ca(org_id, now, root)
    await tx.add_ca(org_id, pki.pem(cert), vault.seal(key), cert.not_valid_after_utc, now)
    ca = await _load_ca(tx)
    assert ca is not None
    return ca


def _as_device(ctx: RequestContext, org_id: UUID, device_id: UUID) -> RequestContext:
    """A public route's context once the credential (token or certificate) named the device."""
    return msgspec.structs.replace(
        ctx,
        org_id=org_id,
        principal=Principal(kind=PrincipalKind.DEVICE, id=device_id, org_id=org_id),
    )


async def _device_execute(
    tx: ProvisioningRecords, ctx: RequestContext, device_id: UUID, command: Any
) -> None:
    await DEVICES.execute(tx, ctx, stream_id=device_id, command=command, org_id=ctx.org_id)


async def _token_execute(
    tx: ProvisioningRecords, ctx: RequestContext, token_id: UUID, command: Any, now: datetime
) -> None:
    await REGISTRATION_TOKENS.execute(
        tx, ctx, stream_id=token_id, command=command, org_id=ctx.org_id, now=now
    )


# --- registration tokens (organization credentials) --------------------------------------


async def create_registration_token(
    deps: Any, ctx: RequestContext, cmd: api.CreateRegistrationToken
) -> api.RegistrationTokenIssued:
    _tenant(ctx)
    vault = _vault(deps)
    config: ProvisioningConfig = deps.provisioning
    now = ids.now()
    ttl = config.token_ttl
    if cmd.ttl_seconds is not None:
        ttl = min(ttl, timedelta(seconds=cmd.ttl_seconds))
    token_id = ids.new_id()
    token = new_token(ctx.org_id)
    async with deps.uow(ctx.org_id) as tx:
        await _ensure_ca(tx, vault, ctx.org_id, now, config.device_root)
        device = await tx.device_by_name(cmd.device_name)
        if device is None:
            device_id = ids.new_id()
            try:
                await _device_execute(tx, ctx, device_id, CreateDevice(name=cmd.device_name))
            except Taken as exc:  # a concurrent create took the name first
                raise Conflict(f"a device named '{cmd.device_name}' was just created") from exc
        elif device.status == DeviceStatus.DECOMMISSIONED:
            raise Conflict(f"device '{cmd.device_name}' is decommissioned")
        else:
            device_id = device.id
        await _token_execute(
            tx,
            ctx,
            token_id,
            registration_tokens.Create(
                device_id=device_id, device_name=cmd.device_name, expires_at=now + ttl
            ),
            now,
        )
        await tx.set_token_hash(token_id, hash_token(token))
        await tx.commit()
    return api.RegistrationTokenIssued(
        id=token_id,
        token=token,
        device_id=device_id,
        device_name=cmd.device_name,
        provision_endpoint=config.public_api_url.rstrip("/") + PROVISION_PATH,
        expires_at=now + ttl,
        created_at=now,
    )


async def list_registration_tokens(
    deps: Any, ctx: RequestContext, q: api.ListRegistrationTokens
) -> Page[api.RegistrationTokenView]:
    async with deps.uow(ctx.org_id) as tx:
        return await tx.page(registration_tokens.STREAM_TYPE, q.query)


async def revoke_registration_token(
    deps: Any, ctx: RequestContext, cmd: api.RevokeRegistrationToken
) -> Empty:
    async with deps.uow(ctx.org_id) as tx:
        await _token_execute(tx, ctx, cmd.id, registration_tokens.Revoke(), ids.now())
        await tx.commit()
    return Empty()


# --- provisioning and renewal (devices, no organization credential) ----------------------


def _provisioned(
    config: ProvisioningConfig, org_id: UUID, device_id: UUID, issued: pki.Issued, ca: _Ca
) -> api.Provisioned:
    return api.Provisioned(
        device_id=device_id,
        certificate=issued.pem,
        ca_chain=ca.pem,
        serial=issued.serial,
        not_after=issued.not_after,
        nats_url=config.nats_url,
        mqtt_url=config.mqtt_url,
        telemetry_subject=subjects.telemetry(org_id, device_id),
        command_subject=subjects.command(org_id, device_id),
        broker_ca_chain=config.broker_ca_chain,
    )


async def provision(deps: Any, ctx: RequestContext, cmd: api.Provision) -> api.Provisioned:
    vault = _vault(deps)
    config: ProvisioningConfig = deps.provisioning
    csr = pki.check_csr(cmd.csr)  # a bad CSR leaves the token unspent
    org_id = token_org(cmd.token)
    now = ids.now()
    async with deps.uow(org_id) as tx:
        # The one guarded UPDATE: concurrent redemptions queue on the row lock and all but
        # the first find used_at set when it commits.
        row = await tx.redeem(hash_token(cmd.token), now)
        if row is None:
            raise Gone(registration_tokens.GONE_MESSAGE)
        # Only a genuine token learns it: refused while suspended, and (rolled back) unspent.
        await _require_active(tx, org_id)
        device_ctx = _as_device(ctx, org_id, row.device_id)
        ca = await _load_ca(tx)
        if ca is None:
            raise ServiceUnavailable("the organization's CA is missing")
        issued = pki.issue(
            ca.certificate,
            vault.open(ca.sealed_key),
            csr,
            org_id=org_id,
            device_id=row.device_id,
            serial=x509.random_serial_number(),
            now=now,
            validity=config.certificate_validity,
        )
        await _token_execute(
            tx,
            device_ctx,
            row.token_id,
            registration_tokens.Redeem(certificate_serial=issued.serial),
            now,
        )
        await _device_execute(
            tx,
            device_ctx,
            row.device_id,
            devices.ProvisionDevice(
                certificate_id=ids.new_id(),
                serial=issued.serial,
                not_before=issued.not_before,
                not_after=issued.not_after,
                token_id=row.token_id,
            ),
        )
        await tx.commit()
    return _provisioned(config, org_id, row.device_id, issued, ca)


async def _require_active(tx: ProvisioningRecords, org_id: UUID) -> None:
    """access_denied while the organization is suspended (decision 76)."""
    if await tx.suspended(org_id):
        raise AccessDenied("the organization is suspended")


async def renew_certificate(
    deps: Any, ctx: RequestContext, cmd: api.RenewCertificate
) -> api.Provisioned:
    vault = _vault(deps)
    config: ProvisioningConfig = deps.provisioning
    current = pki.load_certificate(cmd.certificate)
    org_id, device_id = pki.certificate_identity(current)
    csr = pki.check_csr(cmd.csr)
    now = ids.now()
    previous = pki.serial_hex(current.serial_number)
    async with deps.uow(org_id) as tx:
        ca = await _load_ca(tx)
        if ca is None:
            raise AccessDenied("the certificate was not issued by this organization's CA")
        pki.verify_device_certificate(ca.certificate, current, now)
        pki.verify_possession(current, csr, cmd.signature)
        on_record = await tx.certificate(previous)
        if on_record is None or on_record.device_id != device_id:
            raise AccessDenied("the certificate is not on record")
        if on_record.revoked_at is not None:
            raise AccessDenied("the certificate has been revoked")
        await _require_active(tx, org_id)
        issued = pki.issue(
            ca.certificate,
            vault.open(ca.sealed_key),
            csr,
            org_id=org_id,
            device_id=device_id,
            serial=x509.random_serial_number(),
            now=now,
            validity=config.certificate_validity,
        )
        await _device_execute(
            tx,
            _as_device(ctx, org_id, device_id),
            device_id,
            devices.RenewCertificate(
                certificate_id=ids.new_id(),
                serial=issued.serial,
                not_before=issued.not_before,
                not_after=issued.not_after,
                previous_serial=previous,
            ),
        )
        await tx.commit()
    return _provisioned(config, org_id, device_id, issued, ca)


# --- the CA and certificates (organization credentials) ---------------------------------


async def get_device_ca(
    deps: Any, ctx: RequestContext, _q: api.GetDeviceCa
) -> api.CertificateAuthorityView:
    _tenant(ctx)
    vault = _vault(deps)
    async with deps.uow(ctx.org_id) as tx:
        ca = await _ensure_ca(tx, vault, ctx.org_id, ids.now(), deps.provisioning.device_root)
        await tx.commit()
    return api.CertificateAuthorityView(
        certificate=ca.pem, not_after=ca.certificate.not_valid_after_utc
    )


async def _require_device(tx: DeviceRecords, device_id: UUID) -> None:
    if await tx.device_status(device_id) is None:
        raise NotFound("no such device")


async def list_device_certificates(
    deps: Any, ctx: RequestContext, q: api.ListDeviceCertificates
) -> Page[api.CertificateView]:
    async with deps.uow(ctx.org_id) as tx:
        await _require_device(tx, q.device_id)
        return await tx.certificates(q.device_id, q.query)


async def revoke_device_certificate(
    deps: Any, ctx: RequestContext, cmd: api.RevokeDeviceCertificate
) -> api.CertificateView:
    serial = format(int(cmd.serial, 16), "x")
    async with deps.uow(ctx.org_id) as tx:
        view = await tx.certificate(serial, cmd.device_id)
        if view is None:
            raise NotFound("no such certificate")
        if view.revoked_at is None:
            await _device_execute(tx, ctx, cmd.device_id, devices.RevokeCertificate(serial=serial))
            view = await tx.certificate(serial, cmd.device_id)
            assert view is not None
        await tx.commit()
    return view


HANDLERS: dict[Operation[Any, Any], Callable[..., Awaitable[Any]]] = {
    api.CREATE_REGISTRATION_TOKEN: create_registration_token,
    api.LIST_REGISTRATION_TOKENS: list_registration_tokens,
    api.REVOKE_REGISTRATION_TOKEN: revoke_registration_token,
    api.PROVISION: provision,
    api.RENEW_CERTIFICATE: renew_certificate,
    api.GET_DEVICE_CA: get_device_ca,
    api.LIST_DEVICE_CERTIFICATES: list_device_certificates,
    api.REVOKE_DEVICE_CERTIFICATE: revoke_device_certificate,
}
