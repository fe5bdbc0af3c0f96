from __future__ import annotations

from outpost_kit.settings import CommonSettings


class IdentitySettings(CommonSettings, kw_only=True, frozen=True):
    """``OUTPOST_IDENTITY_*``."""

    max_api_keys_per_org: int = 1000
