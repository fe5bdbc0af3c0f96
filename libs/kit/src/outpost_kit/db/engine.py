"""Engines bound to one service's schema."""

from __future__ import annotations

from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine


def asyncpg_url(dsn: str) -> str:
    """``postgresql://`` DSN → SQLAlchemy's asyncpg URL."""
    url = make_url(dsn)
    return url.set(drivername="postgresql+asyncpg").render_as_string(hide_password=False)


def plain_dsn(dsn: str) -> str:
    """SQLAlchemy URL → plain ``postgresql://`` DSN (for asyncpg.connect)."""
    url = make_url(dsn)
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


def create_engine(
    dsn: str, schema: str, *, pool_size: int = 20, max_overflow: int = 0
) -> AsyncEngine:
    """An engine whose connections resolve unqualified names in ``schema`` only.

    Tables are declared without a schema and bound to the service's schema here, at run
    time (docs/style.md, "Own your schema").

    No ``pool_pre_ping``: it costs a round trip on every checkout of every request. A
    connection broken by a database restart fails its one request and SQLAlchemy discards
    the pool's stale connections on that disconnect error (ADR 0012).

    A fixed pool and no overflow: overflow connections are opened and closed under load, and
    each costs a connection handshake; requests wait for a pooled connection instead."""
    return create_async_engine(
        asyncpg_url(dsn),
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_recycle=1800,
        connect_args={
            "server_settings": {"search_path": schema, "application_name": f"outpost-{schema}"},
            "command_timeout": 60,
        },
    )
