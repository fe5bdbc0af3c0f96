from __future__ import annotations

from outpost_kit.settings import CommonSettings, Secret


class IdentitySettings(CommonSettings, kw_only=True, frozen=True):
    """``OUTPOST_IDENTITY_*``."""

    # API keys an organization may hold (not revoked).
    max_api_keys_per_org: int = 1000
    # A Fernet key (urlsafe base64 of 32 bytes) that encrypts signing keys at rest. Without it
    # identity serves everything but sessions (login answers 503).
    key_encryption_key: Secret | None = None
    # A session's access tokens live this long; refresh tokens until the session's end.
    access_token_ttl_seconds: int = 15 * 60
    refresh_token_ttl_seconds: int = 30 * 24 * 3600  # a session's absolute lifetime
    # A signing key is replaced after this long (``rotate-signing-key`` does it at once).
    signing_key_lifetime_seconds: int = 90 * 24 * 3600
    # argon2id cost (RFC 9106, second recommended option).
    argon2_time_cost: int = 3
    argon2_memory_kib: int = 64 * 1024
    argon2_parallelism: int = 4
    # At most this many password hashes run at once in the process, each holding
    # argon2_memory_kib while it runs: the ceiling of identity's memory is this times 64 MiB
    # plus its baseline (docs/operations.md). A hash that cannot start within the wait is
    # 503 service_unavailable (under the gateway's 5 s RPC time-out).
    max_concurrent_hashes: int = 4
    hash_wait_seconds: float = 2.0
