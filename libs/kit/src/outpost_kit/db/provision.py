"""Create a service's schema and roles (idempotent), run as a database administrator.

Per service ``svc``:
- ``outpost_svc_owner`` (NOLOGIN) owns the schema and every object the migrations create;
- ``outpost_svc`` (LOGIN) is what the service connects as: not owner, not superuser, not
  BYPASSRLS, granted DML on its own schema only, so FORCEd row-level security binds it.
"""

from __future__ import annotations

import re

import asyncpg

from outpost_kit.db.engine import plain_dsn

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,30}$")


def owner_role(service: str) -> str:
    return f"outpost_{service}_owner"


def app_role(service: str) -> str:
    return f"outpost_{service}"


def service_dsn(admin_dsn: str, service: str, password: str) -> str:
    """The DSN the service uses: the admin DSN's host, port and database, the app role."""
    from sqlalchemy.engine import make_url

    url = make_url(plain_dsn(admin_dsn))
    return url.set(username=app_role(service), password=password).render_as_string(
        hide_password=False
    )


def _quote_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


async def provision_service(admin_dsn: str, service: str, password: str) -> str:
    """Create or update ``service``'s schema and roles; returns the service's DSN."""
    if not _NAME.fullmatch(service):
        raise ValueError(f"bad service name {service!r}")
    owner, app = owner_role(service), app_role(service)
    conn = await asyncpg.connect(plain_dsn(admin_dsn))
    try:
        async with conn.transaction():
            # Serialize concurrent provisioning of the same cluster (CREATE ROLE races).
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext('outpost.provision'))")
            roles = {r["rolname"] for r in await conn.fetch("SELECT rolname FROM pg_roles")}
            if owner not in roles:
                await conn.execute(f"CREATE ROLE {owner} NOLOGIN")
            if app not in roles:
                await conn.execute(f"CREATE ROLE {app} LOGIN")
            await conn.execute(
                f"ALTER ROLE {app} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS "
                f"NOINHERIT NOREPLICATION PASSWORD {_quote_literal(password)}"
            )
            await conn.execute(f"ALTER ROLE {owner} NOLOGIN NOSUPERUSER NOBYPASSRLS")
            # The administrator must be able to SET ROLE to the owner to run migrations.
            await conn.execute(f"GRANT {owner} TO CURRENT_USER")
            await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {service} AUTHORIZATION {owner}")
            await conn.execute(f"ALTER SCHEMA {service} OWNER TO {owner}")
            await conn.execute(f"REVOKE ALL ON SCHEMA {service} FROM PUBLIC")
            await conn.execute(f"GRANT USAGE ON SCHEMA {service} TO {app}")
            await conn.execute(f"REVOKE CREATE ON SCHEMA public FROM {app}")
            await conn.execute(
                f"ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA {service} "
                f"GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {app}"
            )
            await conn.execute(
                f"ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA {service} "
                f"GRANT USAGE, SELECT ON SEQUENCES TO {app}"
            )
            # Objects that already exist (e.g. created before a grant was added).
            await conn.execute(
                f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {service} TO {app}"
            )
            await conn.execute(f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {service} TO {app}")
            await conn.execute(f"ALTER ROLE {app} SET search_path = {service}")
            db = await conn.fetchval("SELECT current_database()")
            await conn.execute(f'GRANT CONNECT ON DATABASE "{db}" TO {app}')
    finally:
        await conn.close()
    return service_dsn(admin_dsn, service, password)
