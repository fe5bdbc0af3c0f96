from __future__ import annotations

from outpost_kit.settings import CommonSettings


class ExportsSettings(CommonSettings, kw_only=True, frozen=True):
    """``OUTPOST_EXPORTS_*``."""
