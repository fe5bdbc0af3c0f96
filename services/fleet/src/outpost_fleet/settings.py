from __future__ import annotations

from outpost_kit.settings import CommonSettings


class FleetSettings(CommonSettings, kw_only=True, frozen=True):
    """``OUTPOST_FLEET_*`` (docs/design/fleet.md, "The rollout")."""

    # --- the rollout (ADR 0093) -------------------------------------------------------------
    # Run the consumers and workers of the rollout in this replica (every replica answers
    # requests; the workers share their queues through Postgres, so several may run them).
    rollout: bool = True
    # DEVICES events folded into the fleet's view of devices per transaction.
    devices_batch: int = 500
    # Devices computed per transaction when a change recomputes effective states.
    recompute_page: int = 2000
    # Effective states per SetFleetDesiredStates call (at most 500). Each call is one
    # transaction of devices': bench/fleet with devices and fleet alone, 2,000 devices:
    # GetDevice's p99 1.3x idle during a rollout at 100, one at a time; 3.1x at 500, two at
    # a time; the whole platform at 10,000 devices: the gateway's GET /devices/{id} p99
    # 3.5-4.4x at 100, one at a time (docs/design/fleet.md).
    delivery_batch: int = 100
    # Delivery calls in flight at once (one per worker): with the pause below, the rate
    # devices and the broker see, whatever the size of the change.
    delivery_concurrency: int = 1
    # The pause of one delivery worker between two calls.
    delivery_pause_seconds: float = 0.05
    # A worker's lease on a batch it delivers: after it, a dead worker's batch is due again.
    delivery_lease_seconds: float = 60.0
    # Devices per ApplyDeviceProfile call of a profile-change job (at most 500).
    profile_batch: int = 500
    # Failures in a row of one batch after which a profile-change job fails (the next
    # change of the profile starts it again).
    profile_max_attempts: int = 10
    # How often an idle worker looks at its queue again.
    idle_seconds: float = 0.25
