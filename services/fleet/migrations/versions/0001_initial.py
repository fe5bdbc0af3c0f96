"""Fleet's event store, outbox, inbox and dead letters; the read models of config artefacts
(and their versions) and desired-state bindings (ADR 0090).

Revision ID: 0001
"""

from alembic import op

from outpost_kit.db import ddl

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    ddl.execute(op, ddl.core_tables())
    ddl.execute(
        op,
        """
        CREATE TABLE config_artefacts (
            org_id         uuid        NOT NULL,
            id             uuid        NOT NULL PRIMARY KEY,
            name           text        NOT NULL,
            latest_version integer     NOT NULL,
            version_count  integer     NOT NULL,
            created_at     timestamptz NOT NULL,
            updated_at     timestamptz NOT NULL,
            version        integer     NOT NULL
        );
        -- Names are unique per organization (the handler checks first; this is the race).
        CREATE UNIQUE INDEX config_artefacts_org_name ON config_artefacts (org_id, name);
        -- The live versions of each artefact: immutable once written, deleted one by one.
        CREATE TABLE config_artefact_versions (
            org_id      uuid        NOT NULL,
            artefact_id uuid        NOT NULL,
            version     integer     NOT NULL,
            document    jsonb       NOT NULL,
            schema      jsonb,
            size_bytes  integer     NOT NULL,
            created_at  timestamptz NOT NULL,
            PRIMARY KEY (artefact_id, version)
        );
        CREATE TABLE desired_state_bindings (
            org_id           uuid        NOT NULL,
            id               uuid        NOT NULL PRIMARY KEY,
            artefact_id      uuid        NOT NULL,
            artefact_version integer,
            target_type      text        NOT NULL,
            target_id        uuid,
            priority         integer     NOT NULL,
            created_at       timestamptz NOT NULL,
            updated_at       timestamptz NOT NULL,
            version          integer     NOT NULL,
            CHECK ((target_type = 'ORGANIZATION') = (target_id IS NULL))
        );
        -- The bindings of an artefact (a delete's uses); the bindings of a target (what
        -- applies to a device).
        CREATE INDEX desired_state_bindings_artefact
            ON desired_state_bindings (artefact_id, artefact_version);
        CREATE INDEX desired_state_bindings_target
            ON desired_state_bindings (org_id, target_type, target_id);
        CREATE INDEX desired_state_bindings_org_id ON desired_state_bindings (org_id, id);
        """,
        ddl.tenant_rls("config_artefacts"),
        ddl.tenant_rls("config_artefact_versions"),
        ddl.tenant_rls("desired_state_bindings"),
    )


def downgrade() -> None:
    op.execute(
        "DROP TABLE desired_state_bindings, config_artefact_versions, config_artefacts,"
        " dead_letters, inbox, outbox, events CASCADE"
    )
