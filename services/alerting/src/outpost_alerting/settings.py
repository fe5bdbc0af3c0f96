from __future__ import annotations

from outpost_kit.settings import CommonSettings


class AlertingSettings(CommonSettings, kw_only=True, frozen=True):
    """``OUTPOST_ALERTING_*``."""
