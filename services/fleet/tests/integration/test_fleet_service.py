"""The fleet service's skeleton against real Postgres and NATS: its schema migrates (twice,
idempotently) with row-level security on every tenant table, and its responder answers
over the broker on the fleet process's own connection (its audit log, empty)."""

from __future__ import annotations

import pytest
from fleet_testkit import fleet_env

from outpost_contracts import audit
from outpost_contracts.audit import ListAuditLog
from outpost_fleet import bootstrap
from outpost_kit import ids
from outpost_kit.cli import migrations_dir
from outpost_kit.db.migrate import upgrade

pytestmark = pytest.mark.integration

TENANT_TABLES = ("events", "config_artefacts", "config_artefact_versions", "desired_state_bindings")


async def test_the_service_migrates_and_answers_over_the_broker(
    postgres_dsn: str, nats_url: str
) -> None:
    async with fleet_env(postgres_dsn, nats_url) as env:
        await upgrade(postgres_dsn, "fleet", migrations_dir(bootstrap.__file__))  # again: no-op
        forced = await env.rows(
            None,
            "SELECT relname FROM pg_class WHERE relforcerowsecurity"
            " AND relnamespace = 'fleet'::regnamespace",
        )
        assert set(TENANT_TABLES) <= {r.relname for r in forced}
        page = await env.call(audit.list_audit_log("fleet"), ids.new_id(), ListAuditLog())
        assert page.data == []
