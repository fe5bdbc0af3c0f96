from __future__ import annotations

from outpost_kit.settings import CommonSettings, Secret


class AlertingSettings(CommonSettings, kw_only=True, frozen=True):
    """``OUTPOST_ALERTING_*``."""

    # What this replica runs besides the request/reply operations, which every replica
    # serves (docs/operations.md, "Scaling each service"): ``evaluate``, the telemetry evaluation
    # loop, the timers and the devices view they read; ``deliver``, the notifications
    # consumer and the delivery worker. One process runs both by default (``make dev``); a
    # deployment under load runs evaluation and delivery on separate replicas, so a burst of
    # webhooks never holds up evaluation's event loop (docs/benchmarks.md, bench/alerting).
    evaluate: bool = True
    deliver: bool = True

    # Telemetry messages evaluated per transaction.
    evaluation_batch_messages: int = 500
    # How often the timer loop looks for due ``forSeconds`` windows and ``nodata``.
    timer_check_seconds: float = 0.5
    # How long a replica holds a claimed timer before another may take it.
    timer_lease_seconds: float = 30.0
    timer_batch: int = 500

    # --- notifications (ADR 0064; docs/runbook.md) ---------------------------
    # Fernet key(s) (urlsafe base64 of 32 bytes) sealing webhook secrets at rest; several,
    # comma-separated, during a rotation (the first seals, every one opens). Without it
    # webhook channels cannot be created or sent to (503); e-mail channels work.
    secret_encryption_key: Secret | None = None
    # The SSRF guard: webhook URLs resolving to loopback (127/8, ::1) or private (RFC 1918,
    # ULA, CGNAT) addresses are refused unless allowed here (``make dev`` allows loopback).
    # Link-local, multicast, reserved and unspecified addresses are never allowed.
    webhook_allow_loopback: bool = False
    webhook_allow_private: bool = False
    # One attempt's limit (connect + send + answer), and DNS resolution's.
    webhook_timeout_seconds: float = 3.0
    dns_timeout_seconds: float = 1.0
    # The retry budget: attempts, and the age after which a delivery is not tried again;
    # the back-off doubles from min to max with jitter.
    delivery_max_attempts: int = 8
    delivery_max_age_seconds: float = 3600.0
    delivery_backoff_min_seconds: float = 1.0
    delivery_backoff_max_seconds: float = 300.0
    # Deliveries of one channel in flight at once, across every replica.
    delivery_channel_concurrency: int = 4
    # How often each replica looks for due deliveries, how many it takes at once, and how
    # long it holds one it is sending (a replica that dies gives them back after this).
    delivery_poll_seconds: float = 0.25
    delivery_batch: int = 32
    delivery_lease_seconds: float = 60.0
    # SMTP, per deployment, for EMAIL channels. Without a host, e-mail deliveries fail
    # (dead-lettered, "SMTP is not configured"). ``smtp_tls``: "starttls" (upgrade a plain
    # connection; refuse a server that cannot), "tls" (implicit TLS, port 465) or "none".
    smtp_host: str = ""
    smtp_port: int = 587
    smtp_tls: str = "starttls"
    smtp_username: str = ""
    smtp_password: Secret | None = None
    smtp_from: str = "outpost@localhost"
    smtp_timeout_seconds: float = 10.0
    # A PEM file of the CA(s) that sign the SMTP server's certificate (an internal relay);
    # unset: the system's CAs.
    smtp_ca_file: str = ""
