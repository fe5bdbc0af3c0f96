"""Users, memberships, password hashes and signing keys.

Revision ID: 0002
"""

from alembic import op

from outpost_kit.db import ddl

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # users, user_passwords, signing_keys and signing_key_secrets are platform data (no
    # org_id): an email is unique across the platform, login finds a user before it knows the
    # organization, and signing keys serve every tenant. memberships is a tenant table.
    ddl.execute(
        op,
        """
        CREATE TABLE users (
            id            uuid PRIMARY KEY,
            email         text NOT NULL,
            organizations uuid[] NOT NULL DEFAULT '{}',
            created_at    timestamptz NOT NULL,
            version       integer NOT NULL
        );
        CREATE UNIQUE INDEX users_email ON users (lower(email));
        CREATE TABLE user_passwords (
            user_id       uuid PRIMARY KEY REFERENCES users (id),
            password_hash text NOT NULL,
            updated_at    timestamptz NOT NULL
        );
        CREATE TABLE memberships (
            org_id        uuid NOT NULL,
            id            uuid NOT NULL,
            membership_id uuid NOT NULL,
            email         text NOT NULL,
            role          text NOT NULL,
            created_at    timestamptz NOT NULL,
            version       integer NOT NULL,
            PRIMARY KEY (org_id, id)
        );
        CREATE TABLE signing_keys (
            id             uuid PRIMARY KEY,
            kid            text NOT NULL UNIQUE,
            public_key_pem text NOT NULL,
            not_before     timestamptz NOT NULL,
            not_after      timestamptz NOT NULL,
            retired_at     timestamptz,
            verify_until   timestamptz
        );
        CREATE UNIQUE INDEX signing_keys_one_active ON signing_keys ((true))
            WHERE retired_at IS NULL;
        CREATE TABLE signing_key_secrets (
            kid             text PRIMARY KEY REFERENCES signing_keys (kid),
            private_key_enc text NOT NULL
        );
        """,
        ddl.tenant_rls("memberships"),
    )


def downgrade() -> None:
    op.execute(
        "DROP TABLE signing_key_secrets, signing_keys, memberships, user_passwords, users CASCADE"
    )
