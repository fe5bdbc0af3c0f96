"""Ids and time, passed into the domain from here (the domain never makes its own)."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from uuid import UUID

import uuid6


def new_id() -> UUID:
    """A UUIDv7: time-ordered, so creation order is id order (docs/api.md pagination)."""
    return UUID(bytes=uuid6.uuid7().bytes)


def now() -> datetime:
    return datetime.now(UTC)


def request_id() -> str:
    """32 lowercase hex characters (docs/api.md, "Request id")."""
    return secrets.token_hex(16)
