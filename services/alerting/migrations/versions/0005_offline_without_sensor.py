"""An ``offline`` rule needs no sensor (ADR 0071): ``alert_rules.sensor`` and
``alerts.sensor`` may be NULL. Only an ``offline`` rule created or changed without a sensor
has NULL there (the domain requires a sensor for every other op); ``sensor = ANY(...)``
is never true of NULL, so readings never reach such a rule.

Numbered 0005 to leave 0004 to another branch: merged after one that adds 0004, set
``down_revision`` to "0004" (the two only alter different things).

Revision ID: 0005
"""

from alembic import op

revision = "0005"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE alert_rules ALTER COLUMN sensor DROP NOT NULL")
    op.execute("ALTER TABLE alerts ALTER COLUMN sensor DROP NOT NULL")


def downgrade() -> None:
    # Back to NOT NULL needs a value: '' marks the sensorless rules and their alerts.
    op.execute("UPDATE alerts SET sensor = '' WHERE sensor IS NULL")
    op.execute("UPDATE alert_rules SET sensor = '' WHERE sensor IS NULL")
    op.execute("ALTER TABLE alerts ALTER COLUMN sensor SET NOT NULL")
    op.execute("ALTER TABLE alert_rules ALTER COLUMN sensor SET NOT NULL")
