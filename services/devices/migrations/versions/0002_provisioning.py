"""Provisioning: each organization's device CA, registration tokens and issued certificates.

Revision ID: 0002_provisioning
Revises: 0001
"""

from alembic import op

from outpost_kit.db import ddl

revision = "0002_provisioning"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    ddl.execute(
        op,
        """
        -- One CA per organization; the private key is Fernet-encrypted
        -- (OUTPOST_DEVICES_CA_ENCRYPTION_KEY).
        CREATE TABLE certificate_authorities (
            org_id          uuid PRIMARY KEY,
            certificate_pem text NOT NULL,
            private_key_enc text NOT NULL,
            not_after       timestamptz NOT NULL,
            created_at      timestamptz NOT NULL
        );
        CREATE TABLE registration_tokens (
            org_id      uuid NOT NULL,
            id          uuid NOT NULL,
            device_id   uuid NOT NULL,
            device_name text NOT NULL,
            -- sha256 of the token, set beside the creation event (never in an event)
            token_hash  text,
            created_at  timestamptz NOT NULL,
            expires_at  timestamptz NOT NULL,
            used_at     timestamptz,
            revoked_at  timestamptz,
            PRIMARY KEY (org_id, id)
        );
        CREATE UNIQUE INDEX registration_tokens_hash ON registration_tokens (token_hash);
        CREATE INDEX registration_tokens_org_id ON registration_tokens (org_id, id);
        CREATE TABLE device_certificates (
            org_id     uuid NOT NULL,
            id         uuid NOT NULL,
            serial     text NOT NULL,
            device_id  uuid NOT NULL,
            not_before timestamptz NOT NULL,
            not_after  timestamptz NOT NULL,
            created_at timestamptz NOT NULL,
            revoked_at timestamptz,
            PRIMARY KEY (org_id, id)
        );
        CREATE UNIQUE INDEX device_certificates_serial ON device_certificates (org_id, serial);
        CREATE INDEX device_certificates_device ON device_certificates (org_id, device_id, id);
        """,
        ddl.tenant_rls("certificate_authorities"),
        ddl.tenant_rls("registration_tokens"),
        ddl.tenant_rls("device_certificates"),
    )


def downgrade() -> None:
    op.execute("DROP TABLE device_certificates, registration_tokens, certificate_authorities")
