"""Devices' composition root."""

from __future__ import annotations

import logging
from datetime import timedelta

from outpost_contracts import devices, provisioning
from outpost_contracts.base import Event
from outpost_devices.adapters.pki import CaVault
from outpost_devices.adapters.projections import PROJECTORS
from outpost_devices.app.handlers import Deps
from outpost_devices.app.provisioning import ProvisioningConfig
from outpost_devices.entrypoints import rpc
from outpost_devices.settings import DevicesSettings
from outpost_kit.cli import migrations_dir, service_main
from outpost_kit.runtime import ServiceRuntime

EVENT_TYPES: tuple[type[Event], ...] = (
    devices.DeviceRegistered,
    devices.DeviceUpdated,
    devices.DeviceDecommissioned,
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


def main() -> None:
    service_main(
        "devices",
        settings_type=DevicesSettings,
        build=build,
        migrations=migrations_dir(__file__),
        event_types=EVENT_TYPES,
        projectors=lambda _s: PROJECTORS,
    )


if __name__ == "__main__":
    main()
