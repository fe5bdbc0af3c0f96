"""The gateway's schema in Postgres: the shared, atomic store behind rate limits and
Idempotency-Key, one statement per operation on the hot path (autocommit, no BEGIN/COMMIT
round trips). Every replica connects to the same schema, so counts hold across replicas."""

from __future__ import annotations

import json
import logging
from typing import Any
from uuid import UUID

import asyncpg

from outpost_gateway.domain.idempotency import Record, StoredResponse
from outpost_kit.db.engine import plain_dsn
from outpost_kit.db.reads import keep_session

SCHEMA = "gateway"
WARM_CONNECTIONS = 4
_log = logging.getLogger(__name__)

_HIT = """
INSERT INTO rate_limit_windows AS w (credential_id, category, window_start, org_id, n)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (credential_id, category, window_start) DO UPDATE SET n = w.n + EXCLUDED.n
RETURNING n
"""

# Claims a new key, or takes over one that expired or whose first request was abandoned
# (claimed long ago and never completed: the replica handling it died). A row comes back
# only when this request now owns the key.
_CLAIM = """
INSERT INTO idempotency_keys AS k (credential_id, key, org_id, request_hash)
VALUES ($1, $2, $3, $4)
ON CONFLICT (credential_id, org_id, key) DO UPDATE
   SET request_hash = EXCLUDED.request_hash, created_at = now(),
       claimed_at = now(), status = NULL, headers = NULL, body = NULL
 WHERE k.created_at < now() - make_interval(secs => $5)
    OR (k.status IS NULL AND k.claimed_at < now() - make_interval(secs => $6))
RETURNING 1
"""


class GatewayStore:
    """Implements ``RateLimitStore`` and ``IdempotencyStore`` over one asyncpg pool."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        idempotency_ttl_seconds: float = 24 * 3600.0,
        claim_timeout_seconds: float = 60.0,
    ) -> None:
        self.pool = pool
        self.ttl = idempotency_ttl_seconds
        self.claim_timeout = claim_timeout_seconds

    @classmethod
    async def connect(
        cls,
        dsn: str,
        *,
        pool_size: int = 10,
        command_timeout: float = 5.0,
        idempotency_ttl_seconds: float = 24 * 3600.0,
        claim_timeout_seconds: float = 60.0,
    ) -> GatewayStore:
        """Open the pool with a few connections ready (a burst should not wait for
        connection set-up and trip the fallback); when Postgres is down at start, open it
        empty instead, so the gateway still serves and the rate limiter falls back until
        the store answers."""
        options: dict[str, Any] = {
            "max_size": pool_size,
            "command_timeout": command_timeout,
            "server_settings": {"search_path": SCHEMA, "application_name": "outpost-gateway"},
            # Statements here change no session state: skip the reset round trip on release.
            "reset": keep_session,
        }
        try:
            pool = await asyncpg.create_pool(
                plain_dsn(dsn), min_size=min(pool_size, WARM_CONNECTIONS), **options
            )
        except (OSError, asyncpg.PostgresError) as exc:
            _log.warning("gateway store not reachable at start (%s); connecting lazily", exc)
            pool = await asyncpg.create_pool(plain_dsn(dsn), min_size=0, **options)
        return cls(
            pool,
            idempotency_ttl_seconds=idempotency_ttl_seconds,
            claim_timeout_seconds=claim_timeout_seconds,
        )

    async def close(self) -> None:
        await self.pool.close()

    # -- rate limits ------------------------------------------------------------------

    async def hit(
        self, org_id: UUID, credential_id: UUID, category: str, window_start: int, n: int = 1
    ) -> int:
        count = await self.pool.fetchval(_HIT, credential_id, category, window_start, org_id, n)
        return int(count)

    async def overrides(self, org_id: UUID) -> dict[str, int]:
        rows = await self.pool.fetch(
            "SELECT category, per_minute FROM rate_limit_overrides WHERE org_id = $1", org_id
        )
        return {r["category"]: int(r["per_minute"]) for r in rows}

    async def set_override(self, org_id: UUID, category: str, per_minute: int) -> None:
        await self.pool.execute(
            "INSERT INTO rate_limit_overrides (org_id, category, per_minute) VALUES ($1, $2, $3)"
            " ON CONFLICT (org_id, category) DO UPDATE SET per_minute = EXCLUDED.per_minute",
            org_id,
            category,
            per_minute,
        )

    async def set_overrides(self, org_id: UUID, overrides: dict[str, int | None]) -> None:
        """Set (a number) or clear (None) an organization's per-category limits, at once."""
        async with self.pool.acquire() as conn, conn.transaction():
            for category, per_minute in overrides.items():
                if per_minute is None:
                    await conn.execute(
                        "DELETE FROM rate_limit_overrides WHERE org_id = $1 AND category = $2",
                        org_id,
                        category,
                    )
                else:
                    await conn.execute(
                        "INSERT INTO rate_limit_overrides (org_id, category, per_minute)"
                        " VALUES ($1, $2, $3) ON CONFLICT (org_id, category)"
                        " DO UPDATE SET per_minute = EXCLUDED.per_minute",
                        org_id,
                        category,
                        per_minute,
                    )

    # -- idempotency ------------------------------------------------------------------

    async def claim(
        self, credential_id: UUID, key: str, org_id: UUID, request_hash: bytes
    ) -> Record | None:
        async with self.pool.acquire() as conn:
            claimed = await conn.fetchval(
                _CLAIM, credential_id, key, org_id, request_hash, self.ttl, self.claim_timeout
            )
            if claimed:
                return None
            row = await conn.fetchrow(
                "SELECT request_hash, status, headers, body FROM idempotency_keys"
                " WHERE credential_id = $1 AND org_id = $2 AND key = $3",
                credential_id,
                org_id,
                key,
            )
        if row is None:  # deleted between the two statements (expired): claim afresh
            return await self.claim(credential_id, key, org_id, request_hash)
        response = None
        if row["status"] is not None:
            headers = json.loads(row["headers"]) if row["headers"] else []
            response = StoredResponse(
                status=int(row["status"]),
                headers=tuple((str(k), str(v)) for k, v in headers),
                body=bytes(row["body"] or b""),
            )
        return Record(request_hash=bytes(row["request_hash"]), response=response)

    async def complete(
        self, credential_id: UUID, key: str, org_id: UUID, response: StoredResponse
    ) -> None:
        await self.pool.execute(
            "UPDATE idempotency_keys SET status = $4, headers = $5::jsonb, body = $6"
            " WHERE credential_id = $1 AND org_id = $2 AND key = $3",
            credential_id,
            org_id,
            key,
            response.status,
            json.dumps([list(h) for h in response.headers]),
            response.body,
        )

    async def release(self, credential_id: UUID, key: str, org_id: UUID) -> None:
        await self.pool.execute(
            "DELETE FROM idempotency_keys"
            " WHERE credential_id = $1 AND org_id = $2 AND key = $3 AND status IS NULL",
            credential_id,
            org_id,
            key,
        )

    # -- housekeeping -----------------------------------------------------------------

    async def purge(self, now_epoch: float, window_seconds: int = 60) -> tuple[int, int]:
        """Delete finished rate-limit windows and expired idempotency records; returns how
        many of each. Idempotent, so every replica may run it."""
        windows = await self.pool.execute(
            "DELETE FROM rate_limit_windows WHERE window_start < $1",
            int(now_epoch) - 2 * window_seconds,
        )
        keys = await self.pool.execute(
            "DELETE FROM idempotency_keys WHERE created_at < now() - make_interval(secs => $1)",
            self.ttl,
        )
        return int(windows.split()[-1]), int(keys.split()[-1])
