"""Re-sealing secrets kept encrypted in a table under the first of a service's keys.

A service that encrypts secrets at rest with ``MultiFernet`` (devices' CA keys, alerting's
webhook secrets) is given its keys new first, old after; its rotation command then calls
``reseal`` once, and the old keys can be dropped (docs/runbook.md). Every tenant's rows are
read, so it connects with the migrations' role (``OUTPOST_ADMIN_DATABASE_URL``), in one
transaction that locks the rows it rewrites.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import asyncpg

from outpost_kit.db.engine import plain_dsn


async def reseal(
    admin_dsn: str,
    *,
    table: str,
    keys: Sequence[str],
    column: str,
    rotate: Callable[[Any], Any],
) -> int:
    """Rewrite ``column`` of every row of ``table`` (schema-qualified) as ``rotate`` of it,
    rows named by their ``keys`` columns; how many rows. ``table`` and the column names are
    the caller's constants, never input."""
    where = " AND ".join(f"{key} = ${i}" for i, key in enumerate(keys, start=1))
    select = f"SELECT {', '.join([*keys, column])} FROM {table} FOR UPDATE"
    update = f"UPDATE {table} SET {column} = ${len(keys) + 1} WHERE {where}"
    conn = await asyncpg.connect(plain_dsn(admin_dsn))
    try:
        async with conn.transaction():
            rows = await conn.fetch(select)
            for row in rows:
                await conn.execute(update, *(row[k] for k in keys), rotate(row[column]))
    finally:
        await conn.close()
    return len(rows)
