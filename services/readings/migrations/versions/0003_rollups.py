"""Reading queries (decision 60): each device's group and site in readings' registry, and
the per-minute and per-hour rollups of numeric readings, maintained on ingest, backfilled
here from the rows stored so far.

The rollup tables name their tenant column ``organization_id`` (not ``org_id``, as the other
tables do): the retention job deletes from them by that name. Their policy compares it with
the tenant setting like every other tenant table's.

Revision ID: 0003
"""

from alembic import op

from outpost_kit.db import ddl

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

ROLLUP = """
CREATE TABLE {table} (
    organization_id uuid             NOT NULL,
    device_id       uuid             NOT NULL,
    sensor          text             NOT NULL,
    bucket          timestamptz      NOT NULL,
    count           bigint           NOT NULL,
    sum             double precision NOT NULL,
    min             double precision NOT NULL,
    max             double precision NOT NULL,
    first_ts        timestamptz      NOT NULL,
    first_value     double precision NOT NULL,
    last_ts         timestamptz      NOT NULL,
    last_value      double precision NOT NULL,
    PRIMARY KEY (device_id, sensor, bucket)
);
"""

# From rows of ``readings`` (numbers, and booleans as 0/1; text is not aggregated).
BACKFILL = """
INSERT INTO {table} (organization_id, device_id, sensor, bucket, count, sum, min, max,
                     first_ts, first_value, last_ts, last_value)
SELECT org_id, device_id, sensor, date_trunc('{unit}', ts, 'UTC'), count(*), sum(num),
       min(num), max(num), min(ts), (array_agg(num ORDER BY ts))[1],
       max(ts), (array_agg(num ORDER BY ts DESC))[1]
  FROM readings WHERE num IS NOT NULL
 GROUP BY org_id, device_id, sensor, date_trunc('{unit}', ts, 'UTC');
"""


_ORG = ddl.CURRENT_ORG

# 0002's function, with its second existence check made against pg_class under a fresh
# snapshot: after waiting for the advisory lock, ``to_regclass`` could still answer from a
# stale catalog cache (an advisory lock does not process invalidations), so two
# transactions creating one day's partition at once had the second fail with "already
# exists" (found by the concurrent ingest test of decision 60).
ENSURE_PARTITION = f"""
CREATE OR REPLACE FUNCTION ensure_readings_partition(day date) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $fn$
DECLARE
    part text := 'readings_p' || to_char(day, 'YYYYMMDD');
BEGIN
    IF to_regclass(part) IS NOT NULL THEN
        RETURN false;
    END IF;
    PERFORM pg_advisory_xact_lock(hashtext(current_schema() || '.readings_partitions'));
    IF EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
               WHERE c.relname = part AND n.nspname = current_schema()) THEN
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


def _rls(table: str) -> str:
    return (
        f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY;\n"
        f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY;\n"
        f"CREATE POLICY tenant_isolation ON {table} USING (organization_id = {ddl.CURRENT_ORG})"
        f" WITH CHECK (organization_id = {ddl.CURRENT_ORG});\n"
    )


def upgrade() -> None:
    op.execute(ENSURE_PARTITION)  # keeps its owner, grants and comment
    ddl.execute(
        op,
        """
        -- A device's group and site (DeviceRegistered / DeviceUpdated), so a query by group
        -- or site resolves to device ids here, under the tenant's RLS.
        ALTER TABLE devices ADD COLUMN group_id uuid, ADD COLUMN site_id uuid;
        CREATE INDEX devices_group ON devices (org_id, group_id) WHERE group_id IS NOT NULL;
        CREATE INDEX devices_site ON devices (org_id, site_id) WHERE site_id IS NOT NULL;
        """,
        ROLLUP.format(table="readings_1m"),
        ROLLUP.format(table="readings_1h"),
        """
        -- The owner is bound by FORCEd RLS and sees no row without a tenant: the backfill
        -- reads ``readings`` with FORCE off for this transaction's length.
        ALTER TABLE readings NO FORCE ROW LEVEL SECURITY;
        """,
        BACKFILL.format(table="readings_1m", unit="minute"),
        BACKFILL.format(table="readings_1h", unit="hour"),
        """
        ALTER TABLE readings FORCE ROW LEVEL SECURITY;
        """,
        _rls("readings_1m"),
        _rls("readings_1h"),
    )


def downgrade() -> None:
    op.execute("DROP TABLE readings_1h, readings_1m")
    ddl.execute(
        op,
        """
        DROP INDEX devices_site;
        DROP INDEX devices_group;
        ALTER TABLE devices DROP COLUMN site_id, DROP COLUMN group_id;
        """,
    )
