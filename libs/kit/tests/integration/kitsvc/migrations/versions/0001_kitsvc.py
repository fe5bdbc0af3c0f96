"""kitsvc: the kit's core tables and a tenant projection.

Revision ID: 0001
Revises:
"""

from alembic import op

from outpost_kit.db.ddl import core_tables, statements, tenant_rls

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

COUNTERS = """
CREATE TABLE counters (
    org_id  uuid    NOT NULL,
    id      uuid    NOT NULL,
    name    text    NOT NULL,
    value   integer NOT NULL,
    version integer NOT NULL,
    PRIMARY KEY (org_id, id)
);
"""


def upgrade() -> None:
    for sql in statements(core_tables() + COUNTERS + tenant_rls("counters")):
        op.execute(sql)


def downgrade() -> None:
    op.execute("DROP TABLE counters, dead_letters, inbox, outbox, events")
