"""Exports' event store, outbox, inbox and dead letters.

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


def downgrade() -> None:
    op.execute("DROP TABLE dead_letters, inbox, outbox, events CASCADE")
