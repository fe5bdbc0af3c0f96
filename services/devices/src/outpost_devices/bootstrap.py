"""Devices' composition root."""

from __future__ import annotations

import logging
import os
from datetime import timedelta

import asyncpg

from outpost_contracts import devices, provisioning, registry
from outpost_contracts.base import Event
from outpost_devices.adapters.pki import CaVault
from outpost_devices.adapters.projections import PROJECTORS
from outpost_devices.app.handlers import Deps
from outpost_devices.app.provisioning import ProvisioningConfig
from outpost_devices.entrypoints import rpc
from outpost_devices.settings import DevicesSettings
from outpost_kit.cli import migrations_dir, service_main
from outpost_kit.db.engine import plain_dsn
from outpost_kit.runtime import ServiceRuntime

EVENT_TYPES: tuple[type[Event], ...] = (
    devices.DeviceRegistered,
    devices.DeviceUpdated,
    devices.DeviceDecommissioned,
    *registry.EVENT_TYPES,
    *provisioning.EVENT_TYPES,
)
_log = logging.getLogger(__name__)


def provisioning_config(settings: DevicesSettings) -> ProvisioningConfig:
    key = settings.ca_encryption_key
    return ProvisioningConfig(
        vault=CaVault(key.reveal()) if key is not None else None,
        token_ttl=timedelta(seconds=settings.registration_token_ttl_seconds),
        certificate_validity=timedelta(seconds=settings.certificate_validity_seconds),
        public_api_url=settings.public_api_url,
        nats_url=settings.public_nats_url,
        mqtt_url=settings.public_mqtt_url,
    )


async def build(runtime: ServiceRuntime, settings: DevicesSettings) -> None:
    assert runtime.uow is not None and runtime.reads is not None
    config = provisioning_config(settings)
    if config.vault is None:
        _log.warning("OUTPOST_DEVICES_CA_ENCRYPTION_KEY is not set: provisioning is disabled")
    runtime.serve(rpc.handlers(Deps(uow=runtime.uow, reads=runtime.reads, provisioning=config)))


async def rotate_ca_keys(settings: DevicesSettings, args: list[str]) -> None:
    """``outpost-devices rotate-ca-keys``: re-encrypt every organization's CA key under the
    first of ``OUTPOST_DEVICES_CA_ENCRYPTION_KEY``'s keys (docs/runbook.md). It reads every
    tenant's row, so it connects as ``OUTPOST_ADMIN_DATABASE_URL`` (the migrations' role)."""
    admin = os.environ.get("OUTPOST_ADMIN_DATABASE_URL")
    if args or settings.ca_encryption_key is None or not admin:
        raise SystemExit(
            "usage: outpost-devices rotate-ca-keys, with OUTPOST_DEVICES_CA_ENCRYPTION_KEY"
            " (new key first, then the old ones) and OUTPOST_ADMIN_DATABASE_URL"
        )
    vault = CaVault(settings.ca_encryption_key.reveal())
    conn = await asyncpg.connect(plain_dsn(admin))
    try:
        async with conn.transaction():
            rows = await conn.fetch(
                "SELECT org_id, private_key_enc FROM devices.certificate_authorities FOR UPDATE"
            )
            for row in rows:
                await conn.execute(
                    "UPDATE devices.certificate_authorities SET private_key_enc = $2"
                    " WHERE org_id = $1",
                    row["org_id"],
                    vault.rotate(row["private_key_enc"]),
                )
    finally:
        await conn.close()
    print(f"re-encrypted {len(rows)} CA keys under the first key")


def main() -> None:
    service_main(
        "devices",
        settings_type=DevicesSettings,
        build=build,
        migrations=migrations_dir(__file__),
        event_types=EVENT_TYPES,
        projectors=lambda _s: PROJECTORS,
        commands={"rotate-ca-keys": rotate_ca_keys},
    )


if __name__ == "__main__":
    main()
