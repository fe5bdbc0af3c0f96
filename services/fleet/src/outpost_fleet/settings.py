from __future__ import annotations

from outpost_kit.settings import CommonSettings


class FleetSettings(CommonSettings, kw_only=True, frozen=True):
    """``OUTPOST_FLEET_*``: today only the common settings; the jobs' batch sizes and pacing
    join them with the jobs (docs/design/fleet.md)."""
