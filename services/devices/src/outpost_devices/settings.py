from __future__ import annotations

from outpost_kit.settings import CommonSettings


class DevicesSettings(CommonSettings, kw_only=True, frozen=True):
    """``OUTPOST_DEVICES_*``."""
