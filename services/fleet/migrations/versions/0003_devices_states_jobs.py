"""The fleet's view of devices, their effective desired states and the delivery queue, the
devices' reported states, and the profile-change jobs (ADR 0093).

Revision ID: 0003
"""

from alembic import op

from outpost_kit.db import ddl

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

TABLES = ("fleet_devices", "effective_states", "device_reports", "profile_applications")


def upgrade() -> None:
    ddl.execute(
        op,
        """
        -- What the fleet knows of devices, learnt from the DEVICES stream: where each sits.
        -- A decommissioned device stays as a tombstone (a redelivered registration does
        -- not bring it back); no binding applies to it.
        CREATE TABLE fleet_devices (
            org_id         uuid        NOT NULL,
            id             uuid        NOT NULL PRIMARY KEY,
            site_id        uuid,
            group_id       uuid,
            profile_id     uuid,
            event_version  integer     NOT NULL,
            decommissioned boolean     NOT NULL DEFAULT false,
            updated_at     timestamptz NOT NULL
        );
        CREATE INDEX fleet_devices_org ON fleet_devices (org_id, id) WHERE NOT decommissioned;
        CREATE INDEX fleet_devices_site ON fleet_devices (org_id, site_id)
            WHERE NOT decommissioned AND site_id IS NOT NULL;
        CREATE INDEX fleet_devices_group ON fleet_devices (org_id, group_id)
            WHERE NOT decommissioned AND group_id IS NOT NULL;
        CREATE INDEX fleet_devices_profile ON fleet_devices (org_id, profile_id, id)
            WHERE NOT decommissioned AND profile_id IS NOT NULL;
        -- Each device's effective desired state as last computed, what was delivered of it
        -- and its compliance. ``applied``: the bindings merged; ``artefact_versions``:
        -- their "artefactId@version"; ``compliance_version``: the version of the device's
        -- drift stream (DeviceConfigDrifted) in the event store.
        CREATE TABLE effective_states (
            org_id             uuid        NOT NULL,
            device_id          uuid        NOT NULL PRIMARY KEY,
            document           jsonb       NOT NULL,
            sources            jsonb       NOT NULL,
            applied            uuid[]      NOT NULL,
            artefact_versions  text[]      NOT NULL,
            digest             text        NOT NULL,
            size               integer     NOT NULL,
            computed_at        timestamptz NOT NULL,
            delivered_digest   text,
            delivered_at       timestamptz,
            delivery           text,
            compliance         text,
            compliance_version integer     NOT NULL DEFAULT 0
        );
        CREATE INDEX effective_states_applied ON effective_states USING gin (applied);
        CREATE INDEX effective_states_artefacts ON effective_states USING gin (artefact_versions);
        -- The deliveries due: one row per device whose effective state was not delivered yet
        -- (its digest), claimed in batches by the delivery workers with a lease. Plumbing
        -- without row-level security (ids, a digest, times).
        CREATE TABLE delivery_queue (
            device_id    uuid        NOT NULL PRIMARY KEY,
            tenant_id    uuid        NOT NULL,
            digest       text        NOT NULL,
            due_at       timestamptz NOT NULL,
            attempts     integer     NOT NULL DEFAULT 0,
            leased_until timestamptz
        );
        CREATE INDEX delivery_queue_due ON delivery_queue (due_at);
        -- Each device's newest reported state (devices' ReportedStateChanged).
        CREATE TABLE device_reports (
            org_id      uuid        NOT NULL,
            device_id   uuid        NOT NULL PRIMARY KEY,
            reported    jsonb       NOT NULL,
            reported_at timestamptz NOT NULL
        );
        -- The newest change of each device profile applied to its devices.
        CREATE TABLE profile_applications (
            org_id          uuid        NOT NULL,
            profile_id      uuid        NOT NULL PRIMARY KEY,
            profile_version integer     NOT NULL,
            status          text        NOT NULL,
            total           integer     NOT NULL,
            done            integer     NOT NULL,
            missing         integer     NOT NULL,
            cursor          uuid,
            attempts        integer     NOT NULL,
            run_after       timestamptz,
            error           text,
            requested_at    timestamptz NOT NULL,
            finished_at     timestamptz
        );
        -- The jobs that have work left, for the workers to find (plumbing: ids and times).
        CREATE TABLE profile_job_queue (
            profile_id   uuid        NOT NULL PRIMARY KEY,
            tenant_id    uuid        NOT NULL,
            due_at       timestamptz NOT NULL,
            leased_until timestamptz
        );
        CREATE INDEX profile_job_queue_due ON profile_job_queue (due_at);
        """,
        *(ddl.tenant_rls(t) for t in TABLES),
    )


def downgrade() -> None:
    op.execute(
        "DROP TABLE profile_job_queue, profile_applications, device_reports, delivery_queue,"
        " effective_states, fleet_devices"
    )
