"""Alembic migrations per service, with the version table in the service's schema.

Each service's ``migrations/env.py`` is two lines: ``from outpost_kit.db.migrate import
run_env; run_env()``. ``upgrade()`` runs them as the administrator switched to the
service's owner role, so every object belongs to the owner and not to the app role.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config

from outpost_kit.db.engine import asyncpg_url
from outpost_kit.db.provision import owner_role


def _config(admin_dsn: str, service: str, migrations_dir: Path) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir))
    cfg.set_main_option("sqlalchemy.url", asyncpg_url(admin_dsn).replace("%", "%%"))
    cfg.attributes["outpost_service"] = service
    return cfg


def upgrade_sync(
    admin_dsn: str, service: str, migrations_dir: Path, revision: str = "head"
) -> None:
    command.upgrade(_config(admin_dsn, service, migrations_dir), revision)


async def upgrade(
    admin_dsn: str, service: str, migrations_dir: Path, revision: str = "head"
) -> None:
    """Run ``upgrade`` in a thread: Alembic's env runs its own event loop."""
    await asyncio.to_thread(upgrade_sync, admin_dsn, service, migrations_dir, revision)


def run_env() -> None:
    """The body of every service's ``migrations/env.py``."""
    from alembic import context
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    config = context.config
    service = config.attributes["outpost_service"]
    url = config.get_main_option("sqlalchemy.url")
    assert url is not None

    def run(connection: object) -> None:
        context.configure(
            connection=connection,  # type: ignore[arg-type]
            target_metadata=None,
            version_table_schema=service,
            transaction_per_migration=True,
        )
        with context.begin_transaction():
            context.run_migrations()

    async def main() -> None:
        engine = create_async_engine(url)
        try:
            async with engine.connect() as conn:
                await conn.execute(text(f"SET ROLE {owner_role(service)}"))
                await conn.execute(text(f"SET search_path = {service}"))
                await conn.commit()
                await conn.run_sync(run)
                await conn.commit()
        finally:
            await engine.dispose()

    if context.is_offline_mode():
        raise RuntimeError("offline migrations are not supported")
    asyncio.run(main())
