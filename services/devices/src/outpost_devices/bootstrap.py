"""Devices' composition root."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from uuid import UUID

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from outpost_contracts import commands as command_contracts
from outpost_contracts import device_config, devices, fleet, presence, provisioning, registry
from outpost_contracts.base import Event
from outpost_contracts.envelope import RequestContext
from outpost_contracts.errors import AccessDenied
from outpost_devices.adapters.callout import CalloutRequest, CalloutResponder, Issuer, Sessions
from outpost_devices.adapters.command_delivery import NatsDelivery
from outpost_devices.adapters.command_store import CommandsProjector
from outpost_devices.adapters.pki import CaVault
from outpost_devices.adapters.projections import PROJECTORS
from outpost_devices.adapters.store import PgDevices, PgDevicesReads
from outpost_devices.app import broker, commands
from outpost_devices.app.handlers import Deps
from outpost_devices.app.provisioning import ProvisioningConfig
from outpost_devices.entrypoints import commands as command_entrypoints
from outpost_devices.entrypoints import rpc
from outpost_devices.entrypoints.presence import BrokerPresence, PresenceConfig, TelemetrySeen
from outpost_devices.settings import DevicesSettings
from outpost_kit import ids, messaging, suspensions
from outpost_kit.cli import migrations_dir, reseal_command, service_main
from outpost_kit.runtime import ServiceRuntime

EVENT_TYPES: tuple[type[Event], ...] = (
    devices.DeviceRegistered,
    devices.DeviceUpdated,
    devices.DeviceActivated,
    devices.DeviceDecommissioned,
    *registry.EVENT_TYPES,
    *provisioning.EVENT_TYPES,
    *presence.EVENT_TYPES,
    *command_contracts.EVENT_TYPES,
    *device_config.EVENT_TYPES,
)
# The registry's projectors and the commands' (kept apart: adapters/command_store.py).
ALL_PROJECTORS = (*PROJECTORS, CommandsProjector())
_log = logging.getLogger(__name__)


def device_root(settings: DevicesSettings) -> tuple[x509.Certificate, object] | None:
    if not settings.device_root_cert or settings.device_root_key is None:
        return None
    with (
        open(settings.device_root_cert, "rb") as cert,
        open(settings.device_root_key.reveal(), "rb") as key,
    ):
        return (
            x509.load_pem_x509_certificate(cert.read()),
            serialization.load_pem_private_key(key.read(), password=None),
        )


def broker_ca_chain(settings: DevicesSettings) -> str:
    """The broker's trust anchors (PEM), read once at start; every certificate in the file
    must parse, so a wrong file fails the start and not a device."""
    if not settings.broker_ca_chain_file:
        return ""
    with open(settings.broker_ca_chain_file, "rb") as handle:
        pem = handle.read()
    if not x509.load_pem_x509_certificates(pem):
        raise ValueError(f"{settings.broker_ca_chain_file} holds no PEM certificate")
    return pem.decode("ascii")


def provisioning_config(settings: DevicesSettings) -> ProvisioningConfig:
    key = settings.ca_encryption_key
    return ProvisioningConfig(
        broker_ca_chain=broker_ca_chain(settings),
        device_root=device_root(settings),
        vault=CaVault(key.reveal()) if key is not None else None,
        token_ttl=timedelta(seconds=settings.registration_token_ttl_seconds),
        certificate_validity=timedelta(seconds=settings.certificate_validity_seconds),
        public_api_url=settings.public_api_url,
        nats_url=settings.public_nats_url,
        mqtt_url=settings.public_mqtt_url,
    )


def commands_config(settings: DevicesSettings) -> commands.CommandsConfig:
    return commands.CommandsConfig(
        default_ttl=timedelta(seconds=settings.command_default_ttl_seconds),
        max_ttl=timedelta(seconds=settings.command_max_ttl_seconds),
        resend=timedelta(seconds=settings.command_resend_seconds),
        backoff_max=timedelta(seconds=settings.command_backoff_max_seconds),
        sweep_seconds=settings.command_sweep_seconds,
    )


async def build(runtime: ServiceRuntime, settings: DevicesSettings) -> None:
    assert runtime.uow is not None and runtime.reads is not None
    config = provisioning_config(settings)
    if config.vault is None:
        _log.warning("OUTPOST_DEVICES_CA_ENCRYPTION_KEY is not set: provisioning is disabled")
    assert runtime.nc is not None
    # The use cases' ports over the kit's unit of work and read path (ADR 0085).
    uow = PgDevices.over(runtime.uow)
    reads = PgDevicesReads(runtime.reads)
    command_deps = commands.CommandDeps(
        uow=uow,
        config=commands_config(settings),
        deliver=NatsDelivery(runtime.nc, settings.command_delivery_timeout_seconds),
    )
    nc = runtime.nc

    async def resolve_profile(ctx: RequestContext, profile_id: UUID) -> fleet.DeviceProfileSpec:
        request = fleet.ResolveDeviceProfile(id=profile_id)
        return await messaging.call(nc, fleet.RESOLVE_DEVICE_PROFILE, ctx, request)

    deps = Deps(uow=uow, reads=reads, provisioning=config, resolve_profile=resolve_profile)
    runtime.serve(rpc.handlers(deps, command_deps))
    runtime.background(lambda stop: command_entrypoints.run(nc, command_deps, stop))
    runtime.consume(
        "devices-organizations", suspensions.on_organization_event, suspensions.EVENT_TYPES
    )
    if settings.broker_issuer_seed is None:
        _log.warning("OUTPOST_DEVICES_BROKER_ISSUER_SEED is not set: devices cannot connect")
        return
    cas = broker.CaCache()
    session = timedelta(seconds=settings.broker_session_seconds)

    assert runtime.nc is not None
    presence_config = PresenceConfig(
        reconcile_seconds=settings.presence_reconcile_seconds,
        seen_flush_seconds=settings.presence_seen_flush_seconds,
    )
    if settings.presence_seen_from_telemetry:
        # Its own connection: at full telemetry rate it may fall behind and be cut off as a
        # slow consumer, which must not take the service's requests and callout with it.
        seen = await messaging.connect(
            settings.nats_url, "outpost-devices-seen", tls=settings.nats_tls(), process="devices"
        )
        runtime.background(TelemetrySeen(seen, uow, presence_config).run)
    sessions: Sessions | None = None
    if settings.broker_system_url is not None:
        system = await messaging.connect(
            settings.broker_system_url.reveal(),
            "outpost-devices-system",
            tls=settings.nats_tls(),
            process="devices",
        )
        sessions = Sessions(runtime.nc, system, uow)
        runtime.background(sessions.run)
        # Presence has a system connection of its own (Sessions closes its one on stop).
        presence_system = await messaging.connect(
            settings.broker_system_url.reveal(),
            "outpost-devices-presence",
            tls=settings.nats_tls(),
            process="devices",
        )
        runtime.background(BrokerPresence(presence_system, uow, presence_config).run)
    else:
        _log.warning(
            "OUTPOST_DEVICES_BROKER_SYSTEM_URL is not set: no disconnect on decommission,"
            " no presence from connections"
        )

    async def decide(request: CalloutRequest) -> tuple[str, dict[str, object], datetime]:
        admitted = await broker.authorize(reads, cas, request.chain_pems, ids.now(), session)
        if sessions is not None:
            if sessions.refuses(admitted.org_id):  # heard suspended, not yet in the table
                raise AccessDenied("the organization is suspended")
            sessions.admitted(admitted.device_id, request, admitted.org_id)
        return admitted.name, admitted.permissions(), admitted.expires

    responder = CalloutResponder(runtime.nc, Issuer(settings.broker_issuer_seed.reveal()), decide)
    runtime.background(responder.run)


# ``outpost-devices rotate-ca-keys`` (docs/runbook.md).
rotate_ca_keys = reseal_command(
    "outpost-devices rotate-ca-keys",
    DevicesSettings,
    key_variable="OUTPOST_DEVICES_CA_ENCRYPTION_KEY",
    keys=lambda settings: settings.ca_encryption_key,
    rotator=lambda keys: CaVault(keys).rotate,
    table="devices.certificate_authorities",
    key_columns=("org_id",),
    column="private_key_enc",
    done="re-encrypted {count} CA keys under the first key",
)


def main() -> None:
    service_main(
        "devices",
        settings_type=DevicesSettings,
        build=build,
        migrations=migrations_dir(__file__),
        event_types=EVENT_TYPES,
        projectors=lambda _s: ALL_PROJECTORS,
        commands={"rotate-ca-keys": rotate_ca_keys},
    )


if __name__ == "__main__":
    main()
