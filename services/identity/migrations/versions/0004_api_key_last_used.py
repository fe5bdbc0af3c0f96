"""When each API key was last used (reported by the gateways in batches).

Revision ID: 0004
"""

from alembic import op

from outpost_kit.db import ddl

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Read-model only: usage is not an event (it would flood the event store and the audit
    # log with one entry per key per report); the gateways report it in batches.
    ddl.execute(op, "ALTER TABLE api_keys ADD COLUMN last_used_at timestamptz")


def downgrade() -> None:
    ddl.execute(op, "ALTER TABLE api_keys DROP COLUMN last_used_at")
