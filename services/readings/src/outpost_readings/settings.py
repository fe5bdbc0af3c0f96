from __future__ import annotations

from outpost_kit.settings import CommonSettings


class ReadingsSettings(CommonSettings, kw_only=True, frozen=True):
    """``OUTPOST_READINGS_*``."""

    # Messages fetched, validated and stored per transaction (each up to 10,000 readings).
    ingest_batch_messages: int = 1000
    # How far from arrival a device's timestamp may be before the reading is refused.
    max_future_seconds: int = 300
    max_past_days: int = 365
    # An organization with no setting of its own auto-declares sensors it has not declared.
    auto_declare_sensors: bool = True
    # Day partitions of the readings table kept ready ahead of today (UTC), checked at start
    # and then every ``partition_check_seconds``.
    partition_days_ahead: int = 7
    partition_check_seconds: float = 3600
    # Retention (ADR 0061): how many days of readings an organization without a
    # setting of its own keeps (1-3650), and how often the job runs.
    retention_days: int = 365
    retention_check_seconds: float = 3600
    # Rows deleted per transaction where a partition cannot be dropped whole.
    retention_batch_rows: int = 10_000
