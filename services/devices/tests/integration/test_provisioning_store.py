"""Provisioning against real Postgres, through the handlers and the devices role (FORCEd RLS):
one token redeemed by 50 concurrent callers yields one certificate; CA keys are sealed and
re-encrypted by ``rotate-ca-keys``."""

from __future__ import annotations

import asyncio
import base64
import secrets
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import pytest
from cryptography import x509
from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from outpost_contracts import provisioning as api
from outpost_contracts.envelope import Principal, PrincipalKind, RequestContext
from outpost_contracts.errors import Gone, OutpostError
from outpost_contracts.identity import OrganizationReinstated, OrganizationSuspended
from outpost_devices import bootstrap
from outpost_devices.adapters.pki import CaVault
from outpost_devices.adapters.store import PgDevices, PgDevicesReads
from outpost_devices.app import broker, provisioning
from outpost_devices.app.handlers import Deps
from outpost_devices.settings import DevicesSettings
from outpost_devkit.testing.suspensions import record_organization_event
from outpost_kit import ids
from outpost_kit.cli import migrate, migrations_dir
from outpost_kit.db.engine import create_engine, plain_dsn
from outpost_kit.db.eventstore import EventCodec
from outpost_kit.db.provision import service_dsn
from outpost_kit.db.reads import TenantReads
from outpost_kit.settings import Secret

pytestmark = pytest.mark.integration
OLD_KEY = Fernet.generate_key().decode()


@pytest.fixture(scope="module")
async def devices_dsn(postgres_dsn: str) -> str:
    password = secrets.token_urlsafe(16)
    await migrate(
        "devices",
        migrations_dir(bootstrap.__file__),
        {"OUTPOST_ADMIN_DATABASE_URL": postgres_dsn, "OUTPOST_DEVICES_DB_PASSWORD": password},
    )
    return service_dsn(postgres_dsn, "devices", password)


@pytest.fixture
async def deps(devices_dsn: str) -> AsyncIterator[Deps]:
    engine = create_engine(devices_dsn, "devices", pool_size=20)
    reads = await TenantReads.connect(devices_dsn, "devices", size=2)
    config = provisioning.ProvisioningConfig(vault=CaVault(OLD_KEY))
    try:
        yield Deps(
            uow=PgDevices(engine, EventCodec(bootstrap.EVENT_TYPES), bootstrap.PROJECTORS),
            reads=PgDevicesReads(reads),
            provisioning=config,
        )
    finally:
        await reads.close()
        await engine.dispose()


def _ctx(org_id: Any) -> RequestContext:
    return RequestContext(
        request_id=secrets.token_hex(16),
        org_id=org_id,
        principal=Principal(kind=PrincipalKind.API_KEY, id=uuid4(), org_id=org_id),
    )


def _csr() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "x")]))
        .sign(key, hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.PEM).decode()


async def test_fifty_concurrent_redemptions_issue_one_certificate(deps: Deps) -> None:
    org = uuid4()
    issued = await provisioning.create_registration_token(
        deps, _ctx(org), api.CreateRegistrationToken(device_name="racer")
    )
    request = api.Provision(token=issued.token, csr=_csr())

    async def redeem() -> int:
        try:
            await provisioning.provision(deps, _ctx(uuid4()), request)
        except Gone as exc:  # any other error fails the test
            return exc.status
        return 201

    statuses = await asyncio.gather(*(redeem() for _ in range(50)))
    assert sorted(statuses) == [201] + [410] * 49
    page = await provisioning.list_device_certificates(
        deps, _ctx(org), api.ListDeviceCertificates(device_id=issued.device_id)
    )
    assert len(page.data) == 1
    # another organization sees none of it (RLS), not even the device
    with pytest.raises(OutpostError) as other:
        await provisioning.list_device_certificates(
            deps, _ctx(uuid4()), api.ListDeviceCertificates(device_id=issued.device_id)
        )
    assert other.value.status == 404


async def test_rotate_ca_keys_reencrypts_every_organizations_key(
    deps: Deps, postgres_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    orgs = [uuid4(), uuid4()]
    for org in orgs:
        await provisioning.get_device_ca(deps, _ctx(org), api.GetDeviceCa())
    new_key = Fernet.generate_key().decode()
    monkeypatch.setenv("OUTPOST_ADMIN_DATABASE_URL", postgres_dsn)
    settings = DevicesSettings(ca_encryption_key=Secret(f"{new_key},{OLD_KEY}"))
    await bootstrap.rotate_ca_keys(settings, [])
    conn = await asyncpg.connect(plain_dsn(postgres_dsn))
    try:
        rows = await conn.fetch(
            "SELECT org_id, private_key_enc FROM devices.certificate_authorities"
            " WHERE org_id = ANY($1::uuid[])",
            orgs,
        )
    finally:
        await conn.close()
    assert len(rows) == 2
    for row in rows:
        CaVault(new_key).open(row["private_key_enc"])  # the old key is no longer needed
        with pytest.raises(RuntimeError):
            CaVault(OLD_KEY).open(row["private_key_enc"])


async def _organization(deps: Deps, org: UUID, version: int, data: Any) -> None:
    """What the consumer of identity's organization events does with one."""
    await record_organization_event(deps.uow, org, version, data)


def _key_and_csr() -> tuple[ec.EllipticCurvePrivateKey, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "x")]))
        .sign(key, hashes.SHA256())
    )
    return key, csr.public_bytes(serialization.Encoding.PEM).decode()


def _renewal(key: ec.EllipticCurvePrivateKey, certificate: str) -> api.RenewCertificate:
    _new_key, csr = _key_and_csr()
    der = x509.load_pem_x509_csr(csr.encode()).public_bytes(serialization.Encoding.DER)
    signature = base64.b64encode(key.sign(der, ec.ECDSA(hashes.SHA256()))).decode()
    return api.RenewCertificate(certificate=certificate, csr=csr, signature=signature)


async def test_a_suspended_organization_neither_provisions_renews_nor_connects(
    deps: Deps,
) -> None:
    """docs/design/reliability.md ``suspension`` (decision 76): while the organization is suspended
    its registration tokens answer access_denied and stay unspent, its certificates do not
    renew and the broker's callout refuses its devices; lifting it restores all three."""
    org = uuid4()
    first = await provisioning.create_registration_token(
        deps, _ctx(org), api.CreateRegistrationToken(device_name="first")
    )
    second = await provisioning.create_registration_token(
        deps, _ctx(org), api.CreateRegistrationToken(device_name="second")
    )
    key, csr = _key_and_csr()
    device = await provisioning.provision(
        deps, _ctx(uuid4()), api.Provision(token=first.token, csr=csr)
    )
    chain = [device.certificate, device.ca_chain]
    cas, session = broker.CaCache(), timedelta(hours=1)
    assert (await broker.authorize(deps.reads, cas, chain, ids.now(), session)).org_id == org

    await _organization(deps, org, 2, OrganizationSuspended(reason="unpaid"))
    refusals = [
        provisioning.provision(deps, _ctx(uuid4()), api.Provision(token=second.token, csr=_csr())),
        provisioning.renew_certificate(deps, _ctx(uuid4()), _renewal(key, device.certificate)),
        broker.authorize(deps.reads, cas, chain, ids.now(), session),
    ]
    for refused in refusals:
        with pytest.raises(OutpostError) as exc:
            await refused
        assert (exc.value.status, exc.value.message) == (403, "the organization is suspended")

    await _organization(deps, org, 3, OrganizationReinstated())
    again = await provisioning.provision(
        deps, _ctx(uuid4()), api.Provision(token=second.token, csr=_csr())
    )  # the token was left unspent
    assert again.device_id == second.device_id
    renewed = await provisioning.renew_certificate(
        deps, _ctx(uuid4()), _renewal(key, device.certificate)
    )
    assert renewed.device_id == device.device_id
    assert (await broker.authorize(deps.reads, cas, chain, ids.now(), session)).org_id == org
