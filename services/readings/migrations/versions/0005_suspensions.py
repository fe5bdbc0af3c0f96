"""Which organizations are suspended (ADR 0076): the
``readings-organizations`` consumer's table, plumbing without row-level security (ids, a flag,
a time, a version).

Revision ID: 0005_suspensions
"""

from alembic import op

from outpost_kit import suspensions
from outpost_kit.db import ddl

revision = "0005_suspensions"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    ddl.execute(op, suspensions.DDL)


def downgrade() -> None:
    op.execute("DROP TABLE organization_suspensions")
