"""Gateway settings, read once from ``OUTPOST_GATEWAY_*`` (or shared ``OUTPOST_*``) variables."""

from __future__ import annotations

from outpost_kit.settings import CommonSettings, Secret

MIB = 1024 * 1024


class GatewaySettings(CommonSettings, kw_only=True, frozen=True):
    # Where the HTTP API (and /healthz, /readyz, /metrics) listens.
    host: str = "127.0.0.1"
    port: int = 8080
    # Not used: one process per replica (scale with replicas).
    workers: int = 1
    # The largest request body (413 beyond; the batch ingest route has its own 4 MiB).
    max_body_bytes: int = 1 * MIB
    # Not used (the batch route's limit is BATCH_MAX_BODY_BYTES, decision 59).
    max_batch_body_bytes: int = 16 * MIB
    # Request limits (ADR 0042): the request line's headers together, and the time
    # a request may take before it is answered 503 (above the 5 s RPC timeout).
    max_header_bytes: int = 16 * 1024
    request_timeout_seconds: float = 10.0
    # granian's HTTP/1 read buffer: a request head larger than this is cut off by the server
    # itself (431 then a close while the client may still be sending, so the client can see a
    # reset instead). Kept well above max_header_bytes so that any head up to it is read
    # whole and refused by the gateway's check, in the error model (ADR 0042).
    http1_max_buffer_bytes: int = 2 * MIB
    # How long start-up waits for the credential cache before serving anyway (not ready).
    catch_up_timeout_seconds: float = 30.0
    # A revoked session is remembered this long after its revocation: at least the longest
    # access-token lifetime identity issues (OUTPOST_IDENTITY_ACCESS_TOKEN_TTL_SECONDS, 15 min).
    revoked_session_retention_seconds: float = 3600.0
    # API keys' lastUsedAt: each replica reports the keys it accepted this often.
    key_usage_report_seconds: float = 30.0
    # /events/stream (decision 96): a comment line this often when nothing else is sent
    # (proxies and clients see the connection alive), and the open streams one credential
    # may hold on one replica (one more is 429 throttled).
    stream_heartbeat_seconds: float = 15.0
    stream_max_per_credential: int = 5
    # false turns rate limiting off.
    ratelimit_enabled: bool = True
    # granian: pending connections the kernel queues, and requests taken in at once. Past
    # the backpressure limit granian holds requests back, and under overload it starved
    # some connections for tens of seconds (docs/benchmarks.md); the 10 s request deadline
    # (Bounds) is what bounds a request's life instead.
    http_backlog: int = 1024
    http_backpressure: int = 1024
    # Rate limits (docs/api.md "Rate limits"): requests per minute per credential and category,
    # unless the organization has an override in gateway.rate_limit_overrides.
    ratelimit_single_per_minute: int = 500
    ratelimit_list_per_minute: int = 50
    ratelimit_write_per_minute: int = 50
    # When the shared store does not answer, each replica admits limit / this many requests
    # per window from its own memory (fail open, ADR 0021).
    ratelimit_assumed_replicas: int = 3
    ratelimit_store_timeout_seconds: float = 2.0
    # How long a replica caches an organization's rate-limit override.
    ratelimit_override_ttl_seconds: float = 30.0
    # A busy credential's counts are taken from the store in leases of up to this many
    # (1: one store round trip per request); ADR 0046.
    ratelimit_max_lease: int = 64
    # The public routes that check a credential (login, refresh, the OAuth token endpoint,
    # provisioning and renewal; decision 75): requests per minute per client address and
    # per account (email, refresh token's session, client id, registration token,
    # certificate), counted in the same shared store across replicas.
    public_per_address_per_minute: int = 60
    public_per_account_per_minute: int = 10
    # An account that failed this many times within the failure window may then try once
    # per backoff period, which doubles with every further failure from the base up to the
    # maximum (seconds).
    public_backoff_free_failures: int = 5
    public_backoff_base_seconds: int = 2
    public_backoff_max_seconds: int = 900
    public_failure_window_seconds: int = 3600
    # The proxies (CIDRs, comma-separated or a JSON list) whose X-Forwarded-For is read to
    # find the client's address: the rightmost hop that is not one of them. Empty: the TCP
    # peer is the client and X-Forwarded-For is ignored (docs/operations.md).
    trusted_proxies: list[str] = []
    # Idempotency-Key records are kept this long (docs/api.md: 24 h); an in-flight claim older
    # than the claim timeout is taken to be abandoned (a replica died mid-request).
    idempotency_ttl_seconds: float = 24 * 3600.0
    idempotency_claim_timeout_seconds: float = 60.0
    # Connections each replica keeps to the gateway schema (rate limits, idempotency).
    db_pool_size: int = 20
    # Export downloads (decision 65; docs/runbook.md "Exports"): the keys that sign and
    # verify download links, ``kid:secret`` pairs, comma-separated, the first signing, every
    # one verifying (rotate by putting a new key first; drop the old one after the link
    # lifetime). Unset: a random key per process (fine for one gateway in development; links
    # die with the process and other replicas refuse them).
    download_signing_keys: Secret | None = None
    download_url_seconds: int = 900
    # The base of the links (https://api.example.com) when the gateway sits behind a proxy;
    # empty: the request's own scheme and host.
    public_url: str = ""
    # The object store bucket of export archives (the exports service's OUTPOST_EXPORTS_BUCKET).
    exports_bucket: str = "outpost-exports"
