"""Alerting's rules, alerts, the evaluation state per rule and device, its local view of
devices, the organization's timeline, and the timers of evaluation.

Revision ID: 0002
"""

from alembic import op

from outpost_kit.db import ddl

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TABLES = ("devices", "alert_rules", "alerts", "watches", "timeline")


def upgrade() -> None:
    ddl.execute(
        op,
        """
        -- What alerting knows of devices, learnt from the DEVICES stream: enough to tell
        -- which devices a rule's scope covers.
        CREATE TABLE devices (
            org_id   uuid NOT NULL,
            id       uuid NOT NULL,
            name     text NOT NULL,
            status   text NOT NULL,
            group_id uuid,
            site_id  uuid,
            version  integer NOT NULL,
            PRIMARY KEY (org_id, id)
        );
        CREATE INDEX devices_group ON devices (org_id, group_id) WHERE group_id IS NOT NULL;
        CREATE INDEX devices_site ON devices (org_id, site_id) WHERE site_id IS NOT NULL;
        CREATE TABLE alert_rules (
            org_id      uuid NOT NULL,
            id          uuid NOT NULL,
            version     integer NOT NULL,
            name        text NOT NULL,
            scope_type  text NOT NULL,
            scope_id    uuid,
            sensor      text NOT NULL,
            condition   jsonb NOT NULL,
            severity    text NOT NULL,
            for_seconds integer NOT NULL,
            clear       jsonb,
            hysteresis  double precision,
            enabled     boolean NOT NULL,
            channel_ids uuid[] NOT NULL DEFAULT '{}',
            description text,
            created_at  timestamptz NOT NULL,
            updated_at  timestamptz NOT NULL,
            PRIMARY KEY (org_id, id)
        );
        CREATE INDEX alert_rules_scope ON alert_rules (org_id, scope_type, scope_id);
        CREATE TABLE alerts (
            org_id              uuid NOT NULL,
            id                  uuid NOT NULL,
            version             integer NOT NULL,
            rule_id             uuid NOT NULL,
            rule_version        integer NOT NULL,
            device_id           uuid NOT NULL,
            sensor              text NOT NULL,
            status              text NOT NULL,
            severity            text NOT NULL,
            opened_at           timestamptz NOT NULL,
            trigger             jsonb NOT NULL,
            acknowledged_at     timestamptz,
            acknowledged_by     uuid,
            acknowledge_comment text,
            resolved_at         timestamptz,
            resolved_by         uuid,
            resolve_comment     text,
            resolution          text,
            clear_value         double precision,
            updated_at          timestamptz NOT NULL,
            PRIMARY KEY (org_id, id)
        );
        -- At most one alert that is not RESOLVED per rule and device: the database's word,
        -- whatever evaluation replicas and redeliveries do.
        CREATE UNIQUE INDEX alerts_one_unresolved ON alerts (org_id, rule_id, device_id)
            WHERE status <> 'RESOLVED';
        CREATE INDEX alerts_device ON alerts (org_id, device_id, id);
        -- Evaluation's state per rule and device (a msgspec-encoded Watch).
        CREATE TABLE watches (
            org_id     uuid NOT NULL,
            rule_id    uuid NOT NULL,
            device_id  uuid NOT NULL,
            state      jsonb NOT NULL,
            updated_at timestamptz NOT NULL,
            PRIMARY KEY (org_id, rule_id, device_id)
        );
        -- The organization's timeline (/events): alert transitions, connects and
        -- disconnects, provisioning, commands. ``id`` is the source event's id.
        CREATE TABLE timeline (
            org_id    uuid NOT NULL,
            id        uuid NOT NULL,
            ts        timestamptz NOT NULL,
            type      text NOT NULL,
            device_id uuid,
            alert_id  uuid,
            summary   text NOT NULL,
            data      jsonb NOT NULL DEFAULT '{}',
            PRIMARY KEY (org_id, id)
        );
        CREATE INDEX timeline_ts ON timeline (org_id, ts, id);
        -- Plumbing like the outbox (no tenant data: ids and a time), read by the timer loop
        -- before it knows the tenant; the watch itself stays under RLS and is read in the
        -- tenant's own transaction (as devices' command_wakeups, decision 56).
        CREATE TABLE watch_timers (
            rule_id   uuid NOT NULL,
            device_id uuid NOT NULL,
            tenant_id uuid NOT NULL,
            due_at    timestamptz NOT NULL,
            PRIMARY KEY (rule_id, device_id)
        );
        CREATE INDEX watch_timers_due ON watch_timers (due_at);
        """,
        *(ddl.tenant_rls(t) for t in TABLES),
    )


def downgrade() -> None:
    op.execute("DROP TABLE watch_timers, timeline, watches, alerts, alert_rules, devices")
