from __future__ import annotations

from outpost_kit.settings import CommonSettings


class ReadingsSettings(CommonSettings, kw_only=True, frozen=True):
    """``OUTPOST_READINGS_*``."""

    ingest_batch_messages: int = 500
    # How far from arrival a device's timestamp may be before the reading is refused.
    max_future_seconds: int = 300
    max_past_days: int = 365
