"""Annotations and annotation classes (read models of their aggregates), an organization's
retention beside its auto-declare setting, the tenants retention walks, and a function that
drops a day partition of ``readings`` (ADR 0061).

Revision ID: 0004
"""

from alembic import op

from outpost_kit.db import ddl

revision = "0004"
# After the rollups (0003): retention deletes from their tables too.
down_revision = "0003"
branch_labels = None
depends_on = None

# The smallest retention an organization may set (outpost_contracts.annotations): the
# function refuses any partition that could still hold a reading someone must keep.
MIN_RETENTION_DAYS = 1

# Drops the partition of ``readings`` holding UTC day ``day``. SECURITY DEFINER because only
# the schema's owner may drop a table and the service connects as its app role. It takes a
# date, not a name, so it can only ever name ``readings_pYYYYMMDD``; it drops that only if
# it is a partition of ``readings`` and its day ended more than MIN_RETENTION_DAYS days ago;
# it reads and returns no row; the search path is pinned, the lock wait bounded (dropping a
# partition needs the parent's exclusive lock, and ingest queues behind a waiting drop), and only
# the app role may execute it (the rls-audit checks the last three).
DROP_PARTITION = f"""
CREATE FUNCTION drop_readings_partition(day date) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT SET lock_timeout = '3s'
AS $fn$
DECLARE
    part text := 'readings_p' || to_char(day, 'YYYYMMDD');
    rel regclass;
BEGIN
    IF day IS NULL OR day > (now() AT TIME ZONE 'UTC')::date - {MIN_RETENTION_DAYS + 1} THEN
        RAISE EXCEPTION 'refusing to drop the readings partition of % (too recent)', day
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    PERFORM pg_advisory_xact_lock(hashtext(current_schema() || '.readings_partitions'));
    rel := to_regclass(part);
    IF rel IS NULL THEN
        RETURN false;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_inherits
                    WHERE inhrelid = rel AND inhparent = 'readings'::regclass) THEN
        RAISE EXCEPTION '% is not a partition of readings', part
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    EXECUTE format('DROP TABLE %I', part);
    RETURN true;
END
$fn$
"""

GRANT_EXECUTE = """
DO $do$
BEGIN
    EXECUTE 'REVOKE ALL ON FUNCTION drop_readings_partition(date) FROM PUBLIC';
    EXECUTE format('GRANT EXECUTE ON FUNCTION drop_readings_partition(date) TO %I',
                   'outpost_' || current_schema());
    EXECUTE 'COMMENT ON FUNCTION drop_readings_partition(date) IS '
            || quote_literal('outpost:ddl-only drops a day partition of readings');
END
$do$
"""

# Every organization that has devices (or settings) here, so retention can walk them without
# calling another service: a plumbing list of ids, kept by statement triggers (running as the
# writer, not as a definer). Not on the quarantine: executemany fires a statement trigger per
# row, on a path a flood of bad readings makes hot; an organization's quarantined rows are
# found once it has a device (the migration also takes the ones there are now).
TENANTS_SEEN = """
CREATE FUNCTION note_tenants() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    INSERT INTO retention_tenants (tenant)
        SELECT DISTINCT org_id FROM new_rows ON CONFLICT (tenant) DO NOTHING;
    RETURN NULL;
END
$fn$
"""


def upgrade() -> None:
    ddl.execute(
        op,
        """
        CREATE TABLE annotation_classes (
            org_id      uuid        NOT NULL,
            id          uuid        NOT NULL PRIMARY KEY,
            name        text        NOT NULL,
            colour      text,
            description text,
            created_at  timestamptz NOT NULL,
            updated_at  timestamptz NOT NULL,
            version     integer     NOT NULL
        );
        -- Names are unique per organization (the handler checks first; this is the race).
        CREATE UNIQUE INDEX annotation_classes_org_name ON annotation_classes (org_id, name);
        CREATE TABLE annotations (
            org_id      uuid        NOT NULL,
            id          uuid        NOT NULL PRIMARY KEY,
            device_id   uuid        NOT NULL,
            class_id    uuid        NOT NULL,
            sensor      text,
            from_ts     timestamptz NOT NULL,
            to_ts       timestamptz NOT NULL,
            text        text,
            tags        jsonb       NOT NULL DEFAULT '[]',
            created_at  timestamptz NOT NULL,
            updated_at  timestamptz NOT NULL,
            version     integer     NOT NULL,
            CHECK (from_ts <= to_ts)
        );
        -- A device's annotations overlapping a window; a class's annotations (delete check).
        CREATE INDEX annotations_device_from ON annotations (device_id, from_ts);
        CREATE INDEX annotations_class ON annotations (class_id);
        CREATE INDEX annotations_org_id ON annotations (org_id, id);
        -- An organization's retention; NULL: the deployment's default. ``version`` is the
        -- settings aggregate's (0 for a row an operator wrote before there were events).
        ALTER TABLE org_settings ADD COLUMN retention_days integer
            CHECK (retention_days BETWEEN 1 AND 3650);
        ALTER TABLE org_settings ADD COLUMN version integer NOT NULL DEFAULT 0;
        ALTER TABLE org_settings ADD COLUMN updated_at timestamptz;
        CREATE TABLE retention_tenants (
            tenant uuid NOT NULL PRIMARY KEY
        );
        """,
        ddl.tenant_rls("annotation_classes"),
        ddl.tenant_rls("annotations"),
    )
    op.execute(TENANTS_SEEN)
    ddl.execute(
        op,
        """
        CREATE TRIGGER devices_tenants AFTER INSERT ON devices
            REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION note_tenants();
        CREATE TRIGGER org_settings_tenants AFTER INSERT ON org_settings
            REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION note_tenants();
        -- The tenants known so far: the owner is bound by FORCEd RLS and would see none of
        -- them, so each table stops forcing it for the time of this one statement.
        ALTER TABLE devices NO FORCE ROW LEVEL SECURITY;
        ALTER TABLE quarantine NO FORCE ROW LEVEL SECURITY;
        ALTER TABLE org_settings NO FORCE ROW LEVEL SECURITY;
        INSERT INTO retention_tenants (tenant)
            SELECT org_id FROM devices UNION SELECT org_id FROM quarantine
            UNION SELECT org_id FROM org_settings ON CONFLICT DO NOTHING;
        ALTER TABLE devices FORCE ROW LEVEL SECURITY;
        ALTER TABLE quarantine FORCE ROW LEVEL SECURITY;
        ALTER TABLE org_settings FORCE ROW LEVEL SECURITY;
        """,
    )
    op.execute(DROP_PARTITION)
    op.execute(GRANT_EXECUTE)


def downgrade() -> None:
    op.execute("DROP FUNCTION drop_readings_partition(date)")
    ddl.execute(
        op,
        """
        DROP TRIGGER devices_tenants ON devices;
        DROP TRIGGER org_settings_tenants ON org_settings;
        DROP FUNCTION note_tenants();
        DROP TABLE retention_tenants, annotations, annotation_classes;
        ALTER TABLE org_settings DROP COLUMN retention_days, DROP COLUMN version,
            DROP COLUMN updated_at;
        """,
    )
