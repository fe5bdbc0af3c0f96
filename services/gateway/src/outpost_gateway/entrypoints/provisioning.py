"""Registration tokens, provisioning and device certificates (docs/api.md, "Registration and
provisioning"). ``provision`` and ``renew`` are public: the registration token, or the
device's current certificate and key, is the credential."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from litestar import Request, get, post
from litestar.params import FromPath, JSONBody

from outpost_contracts.provisioning import (
    GET_DEVICE_CA,
    LIST_DEVICE_CERTIFICATES,
    PROVISION,
    RENEW_CERTIFICATE,
    REVOKE_DEVICE_CERTIFICATE,
    CertificateAuthorityView,
    CertificateView,
    GetDeviceCa,
    Provision,
    Provisioned,
    RenewCertificate,
    RevokeDeviceCertificate,
)
from outpost_gateway.domain.public_throttle import PublicRoute
from outpost_gateway.entrypoints.params import Listing
from outpost_gateway.entrypoints.public import call_public
from outpost_gateway.entrypoints.rendering import ListOf, fetch_list, resource_of
from outpost_gateway.entrypoints.security import BackendDep, Ctx

Req = Request[Any, Any, Any]

CERTIFICATE = resource_of(CertificateView)


@post(
    "/api/v1/devices/provision",
    tags=["provisioning"],
    summary="Redeem a registration token with a CSR (no Authorization header)",
    description=(
        "A used, expired, revoked or unknown token is 410 `gone`. The CSR (PEM) must carry an"
        " EC P-256/P-384 or RSA ≥ 2048 key, a valid signature and no extensions but CA:FALSE;"
        " every field of the certificate is the server's."
    ),
)
async def provision(request: Req, data: JSONBody[Provision]) -> Provisioned:
    return await call_public(request, PublicRoute.PROVISION, data.token, PROVISION, data)


@post(
    "/api/v1/devices/certificates/renew",
    tags=["provisioning"],
    summary="Renew a device certificate (no Authorization header)",
    description=(
        "`certificate` is the current certificate, `csr` the new request and `signature` the"
        " base64 signature of the CSR's DER with the current key (ECDSA/SHA-256 or"
        " PKCS#1 v1.5/SHA-256). The current certificate stays valid until it expires or is"
        " revoked."
    ),
)
async def renew_certificate(request: Req, data: JSONBody[RenewCertificate]) -> Provisioned:
    return await call_public(request, PublicRoute.RENEW, data.certificate, RENEW_CERTIFICATE, data)


@get(
    "/api/v1/devices/ca",
    tags=["provisioning"],
    summary="The organization's device CA certificate (made on first need)",
)
async def get_device_ca(ctx: Ctx, backend: BackendDep) -> CertificateAuthorityView:
    return await backend.call(GET_DEVICE_CA, ctx, GetDeviceCa())


@get("/api/v1/devices/{id:uuid}/certificates", tags=["provisioning"])
async def list_device_certificates(
    id: FromPath[UUID],
    ctx: Ctx,
    backend: BackendDep,
    listing: Listing,
) -> ListOf[CertificateView]:
    return await fetch_list(
        listing, backend, ctx, LIST_DEVICE_CERTIFICATES, CERTIFICATE, device_id=id
    )


@post(
    "/api/v1/devices/{id:uuid}/certificates/{serial:str}/revoke",
    tags=["provisioning"],
    summary="Revoke a device certificate",
    status_code=200,
)
async def revoke_device_certificate(
    id: FromPath[UUID], serial: FromPath[str], ctx: Ctx, backend: BackendDep
) -> CertificateView:
    cmd = RevokeDeviceCertificate(device_id=id, serial=serial)
    return await backend.call(REVOKE_DEVICE_CERTIFICATE, ctx, cmd)


ROUTES = [
    provision,
    renew_certificate,
    get_device_ca,
    list_device_certificates,
    revoke_device_certificate,
]
