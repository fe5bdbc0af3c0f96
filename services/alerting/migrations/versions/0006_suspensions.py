"""Which organizations are suspended (ADR 0076): the
``alerting-organizations`` consumer's table, plumbing without row-level security (ids, a flag,
a time, a version).

Revision ID: 0006_suspensions
"""

from alembic import op

from outpost_kit import suspensions
from outpost_kit.db import ddl

revision = "0006_suspensions"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    ddl.execute(op, suspensions.DDL)


def downgrade() -> None:
    op.execute("DROP TABLE organization_suspensions")
