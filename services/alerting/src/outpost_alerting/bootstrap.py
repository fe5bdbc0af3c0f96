"""Alerting' composition root. The service starts, migrates, declares its consumers (the
runtime applies them at connect) and serves health; its features arrive with their issue."""

from __future__ import annotations

from outpost_alerting.settings import AlertingSettings
from outpost_kit.cli import migrations_dir, service_main
from outpost_kit.runtime import ServiceRuntime


async def build(runtime: ServiceRuntime, settings: AlertingSettings) -> None:
    """Nothing to serve yet beyond health, metrics and the outbox relay."""


def main() -> None:
    service_main(
        "alerting",
        settings_type=AlertingSettings,
        build=build,
        migrations=migrations_dir(__file__),
    )


if __name__ == "__main__":
    main()
