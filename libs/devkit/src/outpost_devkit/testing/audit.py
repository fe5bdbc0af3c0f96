"""The rls-audit of docs/design/reliability.md as a reusable check: inspect a schema through the
service's own connection and list every way around row-level security."""

from __future__ import annotations

import secrets
from pathlib import Path

import asyncpg

from outpost_kit.db.engine import plain_dsn
from outpost_kit.db.migrate import upgrade
from outpost_kit.db.provision import provision_service


async def rls_violations(conn: asyncpg.Connection, schema: str) -> list[str]:
    """Every bypass found, as sentences; empty when the schema is sound."""
    problems: list[str] = []
    tables = await conn.fetch(
        """
        SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity,
               (SELECT count(*) FROM pg_policies p
                 WHERE p.schemaname = n.nspname AND p.tablename = c.relname) AS policies
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = $1 AND c.relkind IN ('r', 'p')
          AND EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid
                      AND a.attname IN ('org_id', 'organization_id') AND NOT a.attisdropped)
        """,
        schema,
    )
    if not tables:
        problems.append(f"{schema} has no tenant table at all (is it migrated?)")
    for t in tables:
        if not (t["relrowsecurity"] and t["relforcerowsecurity"]):
            problems.append(f"{t['relname']}: row-level security is not enabled and FORCEd")
        if t["policies"] < 1:
            problems.append(f"{t['relname']}: no policy")
    role = await conn.fetchrow(
        "SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user"
    )
    assert role is not None
    if role["rolsuper"] or role["rolbypassrls"]:
        problems.append("the service role is superuser or BYPASSRLS")
    owned = await conn.fetchval(
        """
        SELECT (SELECT count(*) FROM pg_class WHERE relowner = r.oid)
             + (SELECT count(*) FROM pg_namespace WHERE nspowner = r.oid)
             + (SELECT count(*) FROM pg_proc WHERE proowner = r.oid)
        FROM pg_roles r WHERE r.rolname = current_user
        """
    )
    if owned:
        problems.append(f"the service role owns {owned} objects (owners bypass RLS)")
    members = await conn.fetch(
        "SELECT b.rolname FROM pg_auth_members m JOIN pg_roles b ON b.oid = m.roleid"
        " JOIN pg_roles u ON u.oid = m.member WHERE u.rolname = current_user"
    )
    if members:
        problems.append(f"the service role inherits {[m['rolname'] for m in members]}")
    views = await conn.fetch(
        """
        SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = $1 AND c.relkind IN ('v', 'm')
          AND NOT coalesce('security_invoker=true' = ANY(c.reloptions), false)
        """,
        schema,
    )
    problems.extend(f"view {v['relname']} is not security_invoker" for v in views)
    # A SECURITY DEFINER function is a bypass unless it only runs DDL the app role may not
    # (e.g. adding a partition): declared so in its comment, with its search path pinned and
    # no EXECUTE for PUBLIC. Anything else running as the owner is reported.
    definers = await conn.fetch(
        "SELECT p.proname, coalesce(obj_description(p.oid, 'pg_proc'), '') AS note,"
        " coalesce(array_to_string(p.proconfig, ','), '') LIKE '%search_path=%' AS pinned,"
        " has_function_privilege('public', p.oid, 'EXECUTE') AS public"
        " FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace"
        " WHERE n.nspname = $1 AND p.prosecdef",
        schema,
    )
    problems.extend(
        f"function {f['proname']} is SECURITY DEFINER"
        for f in definers
        if not (f["note"].startswith("outpost:ddl-only") and f["pinned"] and not f["public"])
    )
    for t in tables:
        visible = await conn.fetchval(f'SELECT count(*) FROM "{t["relname"]}"')
        if visible:
            problems.append(f"{t['relname']}: {visible} rows visible with no tenant set")
    return problems


async def audit_service(admin_dsn: str, service: str, migrations: Path) -> list[str]:
    """Provision and migrate ``service`` as ``make dev`` does, then audit it through the
    service's own role."""
    dsn = await provision_service(admin_dsn, service, secrets.token_urlsafe(16))
    await upgrade(admin_dsn, service, migrations)
    conn = await asyncpg.connect(plain_dsn(dsn), server_settings={"search_path": service})
    try:
        return await rls_violations(conn, service)
    finally:
        await conn.close()
