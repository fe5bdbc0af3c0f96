from __future__ import annotations

from outpost_kit.settings import CommonSettings, Secret


class ExportsSettings(CommonSettings, kw_only=True, frozen=True):
    """``OUTPOST_EXPORTS_*`` (docs/runbook.md, "Exports")."""

    # --- limits (a request over one is a validation_error / conflict, nothing is created) --
    # The longest time range one export may cover.
    max_range_days: int = 366
    # Jobs of one organization PENDING or RUNNING at once (409 beyond).
    max_concurrent_per_org: int = 3
    # How long a READY archive stays downloadable; then the expiry job deletes it (EXPIRED).
    artifact_ttl_seconds: float = 24 * 3600.0
    # How often the maintenance job looks for archives past their lifetime, and for jobs
    # whose work item went out this long ago with no worker on them (published again).
    expiry_check_seconds: float = 60.0
    requeue_after_seconds: float = 600.0

    # --- workers ---------------------------------------------------------------------------
    # Jobs run at once by one process (each holds one work-queue message).
    workers: int = 1
    # A worker's lease on its job (Postgres): renewed with every progress write; another
    # worker may take the job over once it lapses.
    lease_seconds: float = 30.0
    # Progress is written (and the lease renewed, cancellation noticed, +WPI sent) every
    # this many rows or seconds, whichever comes first.
    progress_every_rows: int = 100_000
    progress_every_seconds: float = 1.0
    # A job whose attempts (workers lost mid-job) reach this fails for good.
    max_attempts: int = 3
    # Readings per chunk asked of the readings service (at most 12,000).
    chunk_rows: int = 12_000
    # zlib level of the archive's members (1: fastest; 6: zip's default).
    compress_level: int = 1
    # Where archives are written before upload (empty: the system's temporary directory).
    spool_dir: str = ""

    # --- storage ---------------------------------------------------------------------------
    # "nats" (the JetStream object store, the default) or "s3" (any S3-compatible store).
    artifact_store: str = "nats"
    bucket: str = "outpost-exports"
    s3_endpoint_url: str = ""
    s3_region: str = "us-east-1"
    s3_access_key_id: str = ""
    s3_secret_access_key: Secret | None = None
    # Lifetime of an S3 presigned download URL.
    s3_url_seconds: int = 900
