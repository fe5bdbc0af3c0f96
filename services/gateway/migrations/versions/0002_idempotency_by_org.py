"""Idempotency records keyed by organization too (decision 78): one credential may act in
several organizations (an operator's ``X-Organization``), and a key reused in another one is
another request, never a replay of the first organization's response.

Revision ID: 0002
"""

from alembic import op

from outpost_kit.db import ddl

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    ddl.execute(
        op,
        """
        ALTER TABLE idempotency_keys DROP CONSTRAINT idempotency_keys_pkey;
        ALTER TABLE idempotency_keys ADD PRIMARY KEY (credential_id, org_id, key);
        """,
    )


def downgrade() -> None:
    # Two organizations' records of one key cannot share the old key: keep the newest.
    ddl.execute(
        op,
        """
        DELETE FROM idempotency_keys k USING idempotency_keys newer
         WHERE k.credential_id = newer.credential_id AND k.key = newer.key
           AND k.created_at < newer.created_at;
        ALTER TABLE idempotency_keys DROP CONSTRAINT idempotency_keys_pkey;
        ALTER TABLE idempotency_keys ADD PRIMARY KEY (credential_id, key);
        """,
    )
