"""Ingest you can trust: readings partitioned by day, a function that creates a day's
partition, the local sensor registry, per-organization ingest settings, the quarantine and
per-device ``seq`` tracking (ADR 0058).

Revision ID: 0002
"""

from alembic import op

from outpost_kit.db import ddl

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_ORG = ddl.CURRENT_ORG  # inside a dollar-quoted literal of the function body

# Creates the partition of ``readings`` holding UTC day ``day`` (idempotent), with the same
# FORCEd row-level security as every tenant table: a partition can be queried directly, and
# the parent's policy does not apply then. SECURITY DEFINER because only the schema's owner
# may add a partition and the service connects as its app role; it runs nothing but this DDL,
# on a name built from a date, with the search path pinned to the schema, and only the app
# role may execute it (the rls-audit checks all three).
ENSURE_PARTITION = f"""
CREATE FUNCTION ensure_readings_partition(day date) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $fn$
DECLARE
    part text := 'readings_p' || to_char(day, 'YYYYMMDD');
BEGIN
    IF to_regclass(part) IS NOT NULL THEN
        RETURN false;
    END IF;
    PERFORM pg_advisory_xact_lock(hashtext(current_schema() || '.readings_partitions'));
    IF to_regclass(part) IS NOT NULL THEN
        RETURN false;
    END IF;
    EXECUTE format(
        'CREATE TABLE %I PARTITION OF readings FOR VALUES FROM (%L) TO (%L)',
        part, day::timestamp AT TIME ZONE 'UTC', (day + 1)::timestamp AT TIME ZONE 'UTC');
    EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', part);
    EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', part);
    EXECUTE format(
        $p$CREATE POLICY tenant_isolation ON %I
           USING (org_id = {_ORG}) WITH CHECK (org_id = {_ORG})$p$, part);
    RETURN true;
END
$fn$
"""

GRANT_EXECUTE = """
DO $do$
BEGIN
    EXECUTE 'REVOKE ALL ON FUNCTION ensure_readings_partition(date) FROM PUBLIC';
    EXECUTE format('GRANT EXECUTE ON FUNCTION ensure_readings_partition(date) TO %I',
                   'outpost_' || current_schema());
    EXECUTE 'COMMENT ON FUNCTION ensure_readings_partition(date) IS '
            || quote_literal('outpost:ddl-only creates a day partition of readings');
END
$do$
"""


def upgrade() -> None:
    ddl.execute(
        op,
        """
        ALTER TABLE readings RENAME TO readings_unpartitioned;
        ALTER INDEX readings_device_ts RENAME TO readings_unpartitioned_device_ts;
        -- Unique per device, sensor and timestamp (decision 58): a redelivered message stores
        -- nothing twice. Device ids are server-made UUIDs unique across organizations.
        CREATE TABLE readings (
            org_id      uuid             NOT NULL,
            device_id   uuid             NOT NULL,
            sensor      text             NOT NULL,
            ts          timestamptz      NOT NULL,
            kind        smallint         NOT NULL,
            num         double precision,
            txt         text,
            seq         bigint,
            received_at timestamptz      NOT NULL,
            PRIMARY KEY (device_id, sensor, ts)
        ) PARTITION BY RANGE (ts);
        -- Raw reads across every sensor of a device, in time order.
        CREATE INDEX readings_device_ts ON readings (device_id, ts);
        """,
    )
    op.execute(ENSURE_PARTITION)
    op.execute(GRANT_EXECUTE)
    ddl.execute(
        op,
        """
        -- Moving the rows stored so far: the owner is bound by FORCEd RLS, with no tenant
        -- set it would see none of them. So the old table stops forcing it, and the new one
        -- gets its policy once they are in.
        ALTER TABLE readings_unpartitioned NO FORCE ROW LEVEL SECURITY;
        SELECT ensure_readings_partition(d::date)
          FROM (SELECT DISTINCT (ts AT TIME ZONE 'UTC')::date AS d
                  FROM readings_unpartitioned) days;
        INSERT INTO readings SELECT org_id, device_id, sensor, ts, kind, num, txt, seq,
            received_at FROM readings_unpartitioned;
        DROP TABLE readings_unpartitioned;
        """,
        ddl.tenant_rls("readings"),
        """
        -- What readings knows of each device's sensors: declared in the devices service
        -- (SensorDeclared) or, where the organization allows it, declared here by a first
        -- reading (auto = true) with the type of that reading.
        CREATE TABLE sensors (
            org_id      uuid             NOT NULL,
            device_id   uuid             NOT NULL,
            key         text             NOT NULL,
            value_type  text             NOT NULL,
            min         double precision,
            max         double precision,
            auto        boolean          NOT NULL DEFAULT false,
            PRIMARY KEY (device_id, key)
        );
        -- Per-organization ingest settings; an organization without a row has the service's
        -- defaults (OUTPOST_READINGS_AUTO_DECLARE_SENSORS).
        CREATE TABLE org_settings (
            org_id               uuid    NOT NULL PRIMARY KEY,
            auto_declare_sensors boolean NOT NULL
        );
        -- Readings refused by validation, with the reason and what was sent. ``payload`` is
        -- the message as received (a whole refused message) or a one-reading message with
        -- the refused reading (per-reading refusals), so a replay can publish it as it is.
        CREATE TABLE quarantine (
            id            uuid        NOT NULL PRIMARY KEY,
            org_id        uuid        NOT NULL,
            device_id     uuid        NOT NULL,
            sensor        text,
            ts            timestamptz,
            reason        text        NOT NULL,
            detail        text        NOT NULL,
            payload       bytea       NOT NULL,
            source        text        NOT NULL,
            subject       text,
            stream_seq    bigint,
            reading_index integer     NOT NULL,
            -- When the message reached the stream: a replay checks time and defaults ``ts``
            -- against it, as the first pass did.
            arrival       timestamptz NOT NULL,
            received_at   timestamptz NOT NULL,
            -- A redelivered message quarantines nothing twice.
            UNIQUE (source, stream_seq, reading_index)
        );
        CREATE INDEX quarantine_org_received ON quarantine (org_id, received_at, id);
        -- Each device's telemetry numbering: the highest ``seq`` seen and how many numbers
        -- were skipped (shown on the device's health).
        CREATE TABLE device_seq (
            org_id     uuid        NOT NULL,
            device_id  uuid        NOT NULL PRIMARY KEY,
            last_seq   bigint      NOT NULL,
            gaps       bigint      NOT NULL DEFAULT 0,
            resets     integer     NOT NULL DEFAULT 0,
            updated_at timestamptz NOT NULL
        );
        """,
        ddl.tenant_rls("sensors"),
        ddl.tenant_rls("org_settings"),
        ddl.tenant_rls("quarantine"),
        ddl.tenant_rls("device_seq"),
    )


def downgrade() -> None:
    op.execute("DROP TABLE quarantine, device_seq, org_settings, sensors CASCADE")
    op.execute("DROP TABLE readings CASCADE")
    op.execute("DROP FUNCTION ensure_readings_partition(date)")
    ddl.execute(
        op,
        """
        CREATE TABLE readings (
            org_id      uuid             NOT NULL,
            device_id   uuid             NOT NULL,
            sensor      text             NOT NULL,
            ts          timestamptz      NOT NULL,
            kind        smallint         NOT NULL,
            num         double precision,
            txt         text,
            seq         bigint,
            received_at timestamptz      NOT NULL,
            PRIMARY KEY (org_id, device_id, sensor, ts)
        );
        CREATE INDEX readings_device_ts ON readings (org_id, device_id, ts);
        """,
        ddl.tenant_rls("readings"),
    )
