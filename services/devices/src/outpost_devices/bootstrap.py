"""Devices' composition root."""

from __future__ import annotations

from outpost_contracts import devices, registry
from outpost_contracts.base import Event
from outpost_devices.adapters.projections import PROJECTORS
from outpost_devices.app.handlers import Deps
from outpost_devices.entrypoints import rpc
from outpost_devices.settings import DevicesSettings
from outpost_kit.cli import migrations_dir, service_main
from outpost_kit.runtime import ServiceRuntime

EVENT_TYPES: tuple[type[Event], ...] = (
    devices.DeviceRegistered,
    devices.DeviceUpdated,
    devices.DeviceDecommissioned,
    *registry.EVENT_TYPES,
)


async def build(runtime: ServiceRuntime, settings: DevicesSettings) -> None:
    assert runtime.uow is not None and runtime.reads is not None
    runtime.serve(rpc.handlers(Deps(uow=runtime.uow, reads=runtime.reads)))


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
