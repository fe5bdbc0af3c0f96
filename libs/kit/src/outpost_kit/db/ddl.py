"""DDL every service's migrations share: the event store, outbox, inbox and dead letters, and
the row-level-security policy of a tenant table.

Migrations run with ``search_path`` set to the service's schema, as its owner role, so names
here are unqualified and bound to the schema at run time.

The asyncpg driver prepares every statement and a prepared statement holds one command, so
a migration runs these one by one: ``for sql in statements(core_tables()): op.execute(sql)``.
"""

from __future__ import annotations

import re
from typing import Any

TENANT_SETTING = "outpost.org_id"
# After a transaction ends current_setting(..., true) returns '' (not NULL): NULLIF keeps a
# connection with no tenant from matching anything (docs/design/reliability.md).
CURRENT_ORG = f"NULLIF(current_setting('{TENANT_SETTING}', true), '')::uuid"

CORE_TABLES = """
CREATE TABLE events (
    position     bigint GENERATED ALWAYS AS IDENTITY,
    stream_id    uuid        NOT NULL,
    version      integer     NOT NULL CHECK (version > 0),
    event_id     uuid        NOT NULL UNIQUE,
    org_id       uuid        NOT NULL,
    stream_type  text        NOT NULL,
    event_type   text        NOT NULL,
    data         jsonb       NOT NULL,
    request_id   text,
    actor        jsonb,
    meta         jsonb       NOT NULL DEFAULT '{}',
    occurred_at  timestamptz NOT NULL,
    PRIMARY KEY (stream_id, version)
);
CREATE INDEX events_org_position ON events (org_id, position);
CREATE INDEX events_org_type ON events (org_id, event_type, position);

CREATE TABLE outbox (
    position   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id   uuid        NOT NULL,
    subject    text        NOT NULL,
    payload    bytea       NOT NULL,
    headers    jsonb       NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now(),
    attempts   integer     NOT NULL DEFAULT 0,
    last_error text
);

CREATE TABLE inbox (
    consumer     text        NOT NULL,
    message_id   text        NOT NULL,
    processed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, message_id)
);

CREATE TABLE dead_letters (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    consumer    text        NOT NULL,
    message_id  text,
    subject     text        NOT NULL,
    payload     bytea       NOT NULL,
    headers     jsonb       NOT NULL DEFAULT '{}',
    reason      text        NOT NULL,
    error_class text        NOT NULL,
    attempts    integer     NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
"""

_TABLE = re.compile(r"^[a-z_][a-z0-9_]*$")


def tenant_rls(table: str) -> str:
    """Enable and FORCE row-level security on ``table`` with one policy on ``org_id``."""
    if not _TABLE.fullmatch(table):
        raise ValueError(f"bad table name {table!r}")
    return (
        f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY;\n"
        f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY;\n"
        f"CREATE POLICY tenant_isolation ON {table} "
        f"USING (org_id = {CURRENT_ORG}) WITH CHECK (org_id = {CURRENT_ORG});\n"
    )


def core_tables() -> str:
    """The shared tables, with the event store tenant-isolated like every tenant table."""
    return CORE_TABLES + tenant_rls("events")


def statements(ddl: str) -> list[str]:
    """Split DDL made of ``;``-terminated lines into single statements (asyncpg prepares each
    statement, and a prepared statement may hold only one command)."""
    return [part.strip() for part in re.split(r";\s*$", ddl, flags=re.MULTILINE) if part.strip()]


def execute(op: Any, *ddl: str) -> None:
    """Run DDL from a migration, one statement at a time."""
    for sql in statements("\n".join(ddl)):
        op.execute(sql)
