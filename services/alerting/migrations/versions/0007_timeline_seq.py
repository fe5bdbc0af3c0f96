"""The timeline's per-organization sequence (ADR 0096): ``timeline.seq`` numbers an
organization's entries 1, 2, 3… in commit order, from ``timeline_seqs`` (one counter row per
organization, locked by the statement that adds an entry until its transaction ends), so an
entry is visible only once every smaller one is. Existing entries are numbered by time.

Revision ID: 0007_timeline_seq
"""

from alembic import op

from outpost_kit.db import ddl

revision = "0007_timeline_seq"
down_revision = "0006_suspensions"
branch_labels = None
depends_on = None


def upgrade() -> None:
    ddl.execute(
        op,
        """
        CREATE TABLE timeline_seqs (
            org_id uuid PRIMARY KEY,
            seq    bigint NOT NULL
        );
        ALTER TABLE timeline ADD COLUMN seq bigint;
        -- The owner is bound by FORCEd RLS and would see no row: not forced for these
        -- statements (as readings' 0004).
        ALTER TABLE timeline NO FORCE ROW LEVEL SECURITY;
        UPDATE timeline t SET seq = n.seq FROM (
            SELECT org_id, id, row_number() OVER (PARTITION BY org_id ORDER BY ts, id) AS seq
            FROM timeline) n
            WHERE t.org_id = n.org_id AND t.id = n.id;
        INSERT INTO timeline_seqs (org_id, seq)
            SELECT org_id, max(seq) FROM timeline GROUP BY org_id;
        ALTER TABLE timeline FORCE ROW LEVEL SECURITY;
        ALTER TABLE timeline ALTER COLUMN seq SET NOT NULL;
        CREATE UNIQUE INDEX timeline_seq ON timeline (org_id, seq);
        """,
        ddl.tenant_rls("timeline_seqs"),
    )


def downgrade() -> None:
    op.execute("DROP INDEX timeline_seq")
    op.execute("ALTER TABLE timeline DROP COLUMN seq")
    op.execute("DROP TABLE timeline_seqs")
