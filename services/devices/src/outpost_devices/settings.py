from __future__ import annotations

from outpost_kit.settings import CommonSettings, Secret


class DevicesSettings(CommonSettings, kw_only=True, frozen=True):
    """``OUTPOST_DEVICES_*``."""

    # Fernet key(s) (urlsafe base64 of 32 bytes) encrypting the organizations' CA keys at
    # rest; several, comma-separated, during a rotation (the first encrypts; docs/runbook.md).
    # Without it devices serves everything but tokens and provisioning (503).
    ca_encryption_key: Secret | None = None
    # How long a registration token may be redeemed (a request can only shorten it).
    registration_token_ttl_seconds: int = 24 * 3600
    # How long a device certificate is valid; devices renew before it ends.
    certificate_validity_seconds: int = 30 * 24 * 3600
    # What a provisioned device is told (the gateway's and the broker's public addresses).
    public_api_url: str = ""
    public_nats_url: str = ""
    public_mqtt_url: str = ""
    # A PEM file of the trust anchors of the broker's server certificate (the broker CA),
    # handed to every device in its provisioning and renewal answers (``brokerCaChain``,
    # decision 78). Empty: devices are told none (a broker certificate from a public CA).
    broker_ca_chain_file: str = ""
    # The broker (ADR 0054): the platform device root (PEM files)
    # that signs every organization's CA, so nats-server verifies device certificates; and
    # the account nkey seed the auth callout signs its answers with. Without the seed the
    # devices service does not answer the callout (devices cannot connect).
    device_root_cert: str = ""
    device_root_key: Secret | None = None  # a file path; the file is the secret
    broker_issuer_seed: Secret | None = None
    # How long an admitted connection lasts before nats-server closes it and the device
    # reconnects through the callout (the backstop for a kick that failed; decommissioning and
    # revocation close connections at once through broker_system_url).
    broker_session_seconds: int = 3600
    # A system-account connection (tls://user:password@host:port) for closing a device's
    # connections when it is decommissioned or a certificate of it revoked. Without it they
    # last until their session ends (broker_session_seconds).
    broker_system_url: Secret | None = None
    # Presence (ADR 0055): how often the broker's open connections are compared
    # with presence (and at start), and how often telemetry's "last seen" times are written.
    presence_reconcile_seconds: float = 60.0
    presence_seen_flush_seconds: float = 5.0
    # How often the auth callout reports the integrations it admitted to identity
    # (their ``lastConnectedAt``; ADR 0097).
    integration_report_seconds: float = 30.0
    # false: lastSeenAt moves only with connections (no subscription to all telemetry).
    presence_seen_from_telemetry: bool = True
    # Commands and desired state (ADR 0056): a command's expiry when
    # the request names none, and the latest it may name; how long a delivery waits to learn
    # whether a device is subscribed; how often a SENT command without an ack is offered
    # again; the back-off between offers to an offline device (doubling up to the maximum);
    # how often the sweeper looks for due deliveries and expiries.
    command_default_ttl_seconds: int = 3600
    command_max_ttl_seconds: int = 7 * 24 * 3600
    command_delivery_timeout_seconds: float = 0.25
    command_resend_seconds: float = 30.0
    command_backoff_max_seconds: float = 60.0
    command_sweep_seconds: float = 1.0
