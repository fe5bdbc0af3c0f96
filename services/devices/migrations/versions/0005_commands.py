"""Commands to devices and their desired/reported state (ADR 0056):
read models of the command and desired-state streams under FORCEd row-level security, and
the delivery wake-ups the sweeper reads.

Revision ID: 0005_commands
"""

from alembic import op

from outpost_kit.db import ddl

revision = "0005_commands"
down_revision = "0004_presence"
branch_labels = None
depends_on = None

TABLES = ("commands", "device_states")


def upgrade() -> None:
    ddl.execute(
        op,
        """
        CREATE TABLE commands (
            org_id          uuid NOT NULL,
            id              uuid NOT NULL,
            device_id       uuid NOT NULL,
            name            text NOT NULL,
            params          jsonb NOT NULL DEFAULT '{}',
            status          text NOT NULL,
            created_at      timestamptz NOT NULL,
            updated_at      timestamptz NOT NULL,
            expires_at      timestamptz NOT NULL,
            sent_at         timestamptz,
            acknowledged_at timestamptz,
            completed_at    timestamptz,
            result          jsonb,
            requested_by    text,
            version         integer NOT NULL,
            PRIMARY KEY (org_id, id)
        );
        CREATE INDEX commands_org_device ON commands (org_id, device_id, id);
        CREATE INDEX commands_open ON commands (org_id, device_id, id)
            WHERE status IN ('PENDING', 'SENT', 'ACKNOWLEDGED');
        CREATE TABLE device_states (
            org_id              uuid NOT NULL,
            device_id           uuid NOT NULL,
            desired             jsonb NOT NULL DEFAULT '{}',
            version             integer NOT NULL DEFAULT 0,
            desired_updated_at  timestamptz,
            reported            jsonb NOT NULL DEFAULT '{}',
            reported_updated_at timestamptz,
            delivered_version   integer NOT NULL DEFAULT 0,
            PRIMARY KEY (org_id, device_id)
        );
        -- Plumbing like the outbox (no tenant data: ids and a time), read by the delivery
        -- sweeper before it knows the tenant; every command and state stays under RLS and is
        -- read in the tenant's own transaction (decision 56).
        CREATE TABLE command_wakeups (
            device_id   uuid PRIMARY KEY,
            tenant_id   uuid NOT NULL,
            due_at      timestamptz NOT NULL,
            attempts    integer NOT NULL DEFAULT 0,
            seq         bigint NOT NULL DEFAULT 0
        );
        CREATE INDEX command_wakeups_due ON command_wakeups (due_at);
        """,
        *(ddl.tenant_rls(t) for t in TABLES),
    )


def downgrade() -> None:
    op.execute("DROP TABLE command_wakeups, device_states, commands")
