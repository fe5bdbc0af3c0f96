"""Alerting' composition root. The service starts, migrates, declares its consumers (the
runtime applies them at connect) and serves health, notification channels and deliveries;
rules, evaluation and alerts arrive with their own slice."""

from __future__ import annotations

import logging
import os

import asyncpg

from outpost_alerting.adapters.channel_store import ChannelsProjector
from outpost_alerting.adapters.secrets import SecretVault
from outpost_alerting.settings import AlertingSettings
from outpost_contracts import alerting, notifications
from outpost_contracts.base import Event
from outpost_kit.cli import migrations_dir, service_main
from outpost_kit.db.engine import plain_dsn
from outpost_kit.runtime import ServiceRuntime

_log = logging.getLogger(__name__)

EVENT_TYPES: tuple[type[Event], ...] = (
    alerting.AlertRuleCreated,
    alerting.AlertRuleUpdated,
    alerting.AlertRuleDeleted,
    alerting.AlertOpened,
    alerting.AlertAcknowledged,
    alerting.AlertResolved,
    *notifications.EVENT_TYPES,
)
PROJECTORS = (ChannelsProjector(),)


async def build(runtime: ServiceRuntime, settings: AlertingSettings) -> None:
    # --- notifications (docs/decisions.md 64) ------------------------------------------
    from outpost_alerting.entrypoints import notifications as notification_entrypoints

    if settings.secret_encryption_key is None:
        _log.warning(
            "OUTPOST_ALERTING_SECRET_ENCRYPTION_KEY is not set: webhook channels are disabled"
        )
    notification_entrypoints.register(runtime, settings)
    # --- end of notifications ----------------------------------------------------------


async def rotate_secret_keys(settings: AlertingSettings, args: list[str]) -> None:
    """``outpost-alerting rotate-secret-keys``: re-seal every webhook secret under the first
    of ``OUTPOST_ALERTING_SECRET_ENCRYPTION_KEY``'s keys (docs/runbook.md). It reads every
    tenant's row, so it connects as ``OUTPOST_ADMIN_DATABASE_URL`` (the migrations' role)."""
    admin = os.environ.get("OUTPOST_ADMIN_DATABASE_URL")
    if args or settings.secret_encryption_key is None or not admin:
        raise SystemExit(
            "usage: outpost-alerting rotate-secret-keys, with"
            " OUTPOST_ALERTING_SECRET_ENCRYPTION_KEY (new key first, then the old ones) and"
            " OUTPOST_ADMIN_DATABASE_URL"
        )
    vault = SecretVault(settings.secret_encryption_key.reveal())
    conn = await asyncpg.connect(plain_dsn(admin))
    try:
        async with conn.transaction():
            rows = await conn.fetch(
                "SELECT org_id, channel_id, sealed FROM alerting.channel_secrets FOR UPDATE"
            )
            for row in rows:
                await conn.execute(
                    "UPDATE alerting.channel_secrets SET sealed = $3"
                    " WHERE org_id = $1 AND channel_id = $2",
                    row["org_id"],
                    row["channel_id"],
                    vault.rotate(row["sealed"]),
                )
    finally:
        await conn.close()
    print(f"re-sealed {len(rows)} webhook secrets under the first key")


def main() -> None:
    service_main(
        "alerting",
        settings_type=AlertingSettings,
        build=build,
        migrations=migrations_dir(__file__),
        event_types=EVENT_TYPES,
        projectors=lambda _s: PROJECTORS,
        commands={"rotate-secret-keys": rotate_secret_keys},
    )


if __name__ == "__main__":
    main()
