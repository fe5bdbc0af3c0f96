"""Gateway settings, read once from ``OUTPOST_GATEWAY_*`` (or shared ``OUTPOST_*``) variables."""

from __future__ import annotations

from outpost_kit.settings import CommonSettings

MIB = 1024 * 1024


class GatewaySettings(CommonSettings, kw_only=True, frozen=True):
    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 1
    max_body_bytes: int = 1 * MIB
    max_batch_body_bytes: int = 16 * MIB
    # How long start-up waits for the credential cache before serving anyway (not ready).
    catch_up_timeout_seconds: float = 30.0
