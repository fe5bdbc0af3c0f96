from __future__ import annotations

from outpost_kit.settings import CommonSettings


class AlertingSettings(CommonSettings, kw_only=True, frozen=True):
    """``OUTPOST_ALERTING_*``."""

    # Telemetry messages evaluated per transaction.
    evaluation_batch_messages: int = 500
    # How often the timer loop looks for due ``forSeconds`` windows and ``nodata``.
    timer_check_seconds: float = 0.5
    # How long a replica holds a claimed timer before another may take it.
    timer_lease_seconds: float = 30.0
    timer_batch: int = 500
