"""Notification channels (read model of their streams) and their sealed secrets, deliveries
(one per alert event and channel; a dead one is the dead-letter record with its last error),
every attempt (the delivery log), and the delivery queue the workers claim (ADR 0064).

Revision ID: 0003
"""

from alembic import op

from outpost_kit.db import ddl

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

TABLES = ("notification_channels", "channel_secrets", "deliveries", "delivery_attempts")


def upgrade() -> None:
    ddl.execute(
        op,
        """
        CREATE TABLE notification_channels (
            org_id      uuid NOT NULL,
            id          uuid NOT NULL,
            type        text NOT NULL,
            name        text NOT NULL,
            enabled     boolean NOT NULL,
            url         text,
            addresses   jsonb,
            has_secret  boolean NOT NULL DEFAULT false,
            created_at  timestamptz NOT NULL,
            updated_at  timestamptz NOT NULL,
            version     integer NOT NULL,
            PRIMARY KEY (org_id, id)
        );
        -- A webhook's secret, Fernet-sealed under OUTPOST_ALERTING_SECRET_ENCRYPTION_KEY. Not
        -- in the event store (events carry no secret): written beside the channel's events
        -- in the same transaction.
        CREATE TABLE channel_secrets (
            org_id      uuid NOT NULL,
            channel_id  uuid NOT NULL,
            sealed      bytea NOT NULL,
            updated_at  timestamptz NOT NULL,
            PRIMARY KEY (org_id, channel_id)
        );
        CREATE TABLE deliveries (
            org_id       uuid NOT NULL,
            id           uuid NOT NULL,
            channel_id   uuid NOT NULL,
            event_id     uuid NOT NULL,
            event_type   text NOT NULL,
            kind         text NOT NULL,
            alert_id     uuid,
            body         bytea NOT NULL,
            status       text NOT NULL,
            attempts     integer NOT NULL DEFAULT 0,
            created_at   timestamptz NOT NULL,
            updated_at   timestamptz NOT NULL,
            next_at      timestamptz,
            last_status  integer,
            last_error   text,
            PRIMARY KEY (org_id, id)
        );
        -- One delivery per event and channel: a redelivered alert event makes none twice.
        CREATE UNIQUE INDEX deliveries_once ON deliveries (org_id, event_id, channel_id);
        CREATE INDEX deliveries_dead ON deliveries (org_id, id) WHERE status = 'DEAD';
        CREATE TABLE delivery_attempts (
            org_id       uuid NOT NULL,
            id           uuid NOT NULL,
            delivery_id  uuid NOT NULL,
            channel_id   uuid NOT NULL,
            alert_id     uuid,
            event_id     uuid NOT NULL,
            event_type   text NOT NULL,
            kind         text NOT NULL,
            attempt      integer NOT NULL,
            attempted_at timestamptz NOT NULL,
            outcome      text NOT NULL,
            status_code  integer,
            error        text,
            latency_ms   double precision NOT NULL,
            PRIMARY KEY (org_id, id)
        );
        CREATE INDEX delivery_attempts_alert ON delivery_attempts (org_id, alert_id, id)
            WHERE alert_id IS NOT NULL;
        CREATE INDEX delivery_attempts_channel ON delivery_attempts (org_id, channel_id, id);
        -- Plumbing like the outbox (ids and times only), claimed by the delivery workers with
        -- FOR UPDATE SKIP LOCKED before they know the tenant (as devices' command_wakeups);
        -- the delivery itself is read and changed in the tenant's transaction under RLS.
        -- ``leased_until``: a worker is sending it (the per-channel concurrency limit counts
        -- these); a worker that dies leaves it due again when the lease ends. ``alert_id``
        -- and ``seq``: one alert's deliveries to one channel go in the order they were made.
        CREATE TABLE delivery_queue (
            delivery_id  uuid PRIMARY KEY,
            tenant_id    uuid NOT NULL,
            channel_id   uuid NOT NULL,
            alert_id     uuid,
            seq          bigint GENERATED ALWAYS AS IDENTITY,
            due_at       timestamptz NOT NULL,
            leased_until timestamptz
        );
        CREATE INDEX delivery_queue_due ON delivery_queue (due_at);
        CREATE INDEX delivery_queue_alert ON delivery_queue (channel_id, alert_id, seq)
            WHERE alert_id IS NOT NULL;
        CREATE INDEX delivery_queue_channel ON delivery_queue (channel_id)
            WHERE leased_until IS NOT NULL;
        """,
        *(ddl.tenant_rls(t) for t in TABLES),
    )


def downgrade() -> None:
    op.execute(
        "DROP TABLE delivery_queue, delivery_attempts, deliveries, channel_secrets,"
        " notification_channels"
    )
