"""The platform's material, made alike by ``make dev`` (``outpost_devkit.dev.stack``) and by
``outpost-admin deploy init`` in an image (``outpost_kit.deploy``): the processes, the secrets
file (database and broker passwords, encryption keys), the broker's users and nats-server's
security configuration. The broker's PKI is ``outpost_kit.broker_pki``.

In the runtime kit because the deployment jobs run ``outpost-admin`` from a service image
(docs/adr/0087-runtime-kit-apart-from-dev-tools.md).
"""

from __future__ import annotations

import base64
import json
import os
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from outpost_contracts import access
from outpost_kit.broker_pki import BrokerPki

# Every process, in start order; the gateway comes last.
DOMAIN_SERVICES: tuple[str, ...] = (
    "identity",
    "devices",
    "readings",
    "alerting",
    "exports",
    "fleet",
)
ALL_SERVICES: tuple[str, ...] = (*DOMAIN_SERVICES, "gateway")
# Processes with a database schema (migrated, given a role and OUTPOST_<SVC>_DATABASE_URL):
# all of them; the gateway's schema holds rate-limit counters and idempotency keys.
DB_SERVICES: tuple[str, ...] = ALL_SERVICES


SECRETS_NAME = "secrets.json"
KEY_ENCRYPTION_KEY = "identity_key_encryption_key"
CA_ENCRYPTION_KEY = "devices_ca_encryption_key"
SECRET_ENCRYPTION_KEY = "alerting_secret_encryption_key"
DOWNLOAD_SIGNING_KEY = "gateway_download_signing_key"

# The broker user of dev tooling and tests (streams, inspection); every service has its own.
DEV_NATS_USER = "outpost-dev"
# The system-account user the devices service closes a decommissioned device's connections with.
SYSTEM_NATS_USER = "outpost-system"


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically, readable by its owner only."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


NATS_USERS: tuple[str, ...] = (*ALL_SERVICES, DEV_NATS_USER)
_ALL_NATS_USERS: tuple[str, ...] = (*NATS_USERS, SYSTEM_NATS_USER)
# Each broker user has two login names (slots) with the same permissions, both always in the
# auth callout's auth_users: a password is rotated by giving the idle slot a new one and
# moving the process to it, which changes only nats-server's reloadable users, never its
# auth_callout block (a reload refuses any change there). docs/runbook.md, "Rotating a
# broker credential"; decision 74.
SLOT_B_SUFFIX = "-b"


def nats_slots(user: str) -> tuple[str, str]:
    """The two login names of broker user ``user``."""
    return user, user + SLOT_B_SUFFIX


def _nats_secret(user: str) -> str:
    return f"nats_{user}"


def _active_key(user: str) -> str:
    return f"nats_active_{user}"


def nats_login(secrets: Mapping[str, str], user: str) -> tuple[str, str]:
    """The login name and password ``user``'s processes connect with now (its active slot)."""
    slot = secrets.get(_active_key(user)) or user
    if slot not in nats_slots(user):
        raise ValueError(f"{_active_key(user)} names {slot!r}, not one of {nats_slots(user)}")
    return slot, secrets[_nats_secret(slot)]


def rotate_nats_password(path: Path, user: str, *, retire: bool = False) -> str:
    """Rotate ``user``'s broker password in the secrets file ``path``; returns the slot its
    processes use afterwards.

    Without ``retire``: the idle slot gets a new password and becomes the active one; the
    old slot's password stays valid so running processes keep working until they restart.
    With ``retire``: the idle slot's password is replaced by a fresh one nobody holds (the
    old credential stops working at the next reload). Rendering the broker's configuration
    and the processes' variables again (``outpost-admin deploy init``) and reloading
    nats-server applies either."""
    if user not in _ALL_NATS_USERS:
        raise ValueError(f"unknown broker user {user!r}; known: {_ALL_NATS_USERS}")
    stored = ensure_secrets(path)
    active, _ = nats_login(stored, user)
    idle = next(slot for slot in nats_slots(user) if slot != active)
    stored[_nats_secret(idle)] = secrets.token_urlsafe(24)
    if not retire:
        stored[_active_key(user)] = active = idle
    _write_private(path, json.dumps(stored, indent=2) + "\n")
    return active


def _nats_permissions(process: str) -> dict[str, Any]:
    """nats-server's ``permissions`` of a process's user: what the contracts imply
    (``outpost_contracts.access``, decision 74); the tooling user has none (all)."""
    if process == SYSTEM_NATS_USER:
        perms = access.system_permissions()
    else:
        perms = access.permissions(process)
    rendered: dict[str, Any] = {
        "publish": {"allow": list(perms.publish)},
        "subscribe": {"allow": list(perms.subscribe)},
    }
    if perms.allow_responses:
        rendered["allow_responses"] = True
    return rendered


def broker_config(
    broker: BrokerPki,
    mqtt_port: int,
    passwords: Mapping[str, str],
    *,
    listen_host: str = "127.0.0.1",
    files_at: Path | None = None,
    mqtt_stream_replicas: int = 1,
) -> str:
    """nats-server's security: TLS with client certificates on both listeners, a user per
    service with the permissions its contracts imply (they bypass the auth callout), the
    tooling user (streams, inspection; all permissions), and the devices service's auth
    callout for every other connection, i.e. devices (ADRs 0054
    and 0074).

    ``listen_host`` is where the MQTT listener binds; ``files_at`` is where nats-server sees
    ``broker``'s directory when it is not where it was written (a container's mount,
    ``outpost_kit.deploy``); ``mqtt_stream_replicas`` (above 1 on a cluster) is the replicas
    of the streams nats-server makes for MQTT (sessions, QoS 1/2 messages: decision 82)
    rather than its guess from the routes that resolve when the first device connects."""
    issuer = broker.issuer_public_key  # read here: ``files_at`` may not exist on this machine
    if files_at is not None:
        broker = BrokerPki(files_at)
    q = json.dumps
    users = ",\n".join(
        f"    {{user: {q(slot)}, password: {q(passwords[_nats_secret(slot)])}"
        + (f", permissions: {q(_nats_permissions(u))}" if u in ALL_SERVICES else "")
        + "}"
        for u in NATS_USERS
        for slot in nats_slots(u)
    )
    tls = (
        f"cert_file: {q(str(broker.server_cert))}\n"
        f"  key_file: {q(str(broker.server_key))}\n"
        f"  ca_file: {q(str(broker.client_ca_file))}\n"
        "  verify: true\n"
        "  timeout: 5\n"
    )
    system_perms = q(_nats_permissions(SYSTEM_NATS_USER))
    system = ",\n".join(
        f"    {{user: {q(slot)}, password: {q(passwords[_nats_secret(slot)])}, "
        f"permissions: {system_perms}}}"
        for slot in nats_slots(SYSTEM_NATS_USER)
    )
    auth_users = [slot for u in _ALL_NATS_USERS for slot in nats_slots(u)]
    return (
        f"tls {{\n  {tls}}}\n"
        "accounts {\n"
        f"  SYS: {{ users: [\n{system}\n  ] }}\n"
        "}\n"
        "system_account: SYS\n"
        "authorization {\n"
        f"  users: [\n{users}\n  ]\n"
        "  auth_callout {\n"
        f"    issuer: {q(issuer)}\n"
        f"    auth_users: [{', '.join(q(u) for u in auth_users)}]\n"
        "  }\n"
        "}\n"
        # NatsServer and DevStack find the MQTT port with an anchored `mqtt { listen:`.
        f"mqtt {{ listen: {listen_host}:{mqtt_port}\n"
        f"  tls {{\n  {tls}  }}\n"
        + (f"  stream_replicas: {mqtt_stream_replicas}\n" if mqtt_stream_replicas > 1 else "")
        + "}\n"
    )


def ensure_secrets(path: Path) -> dict[str, str]:
    """The database and broker passwords and the encryption keys in ``path`` (a 0600 JSON
    file), the missing ones made now: ``make dev`` and ``outpost-admin deploy init`` keep
    them so a restarted platform can still open what it sealed."""
    stored: dict[str, str] = {}
    if path.exists():
        stored = json.loads(path.read_text())
    missing = [s for s in DB_SERVICES if not stored.get(s)]
    missing += [
        _nats_secret(slot)
        for u in _ALL_NATS_USERS
        for slot in nats_slots(u)
        if not stored.get(_nats_secret(slot))
    ]
    for service in missing:
        stored[service] = secrets.token_urlsafe(24)
    if not stored.get(KEY_ENCRYPTION_KEY):
        # A Fernet key (urlsafe base64 of 32 random bytes) for identity's signing keys;
        # kept with the passwords so a restarted stack can still open its keys.
        stored[KEY_ENCRYPTION_KEY] = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()
        missing.append(KEY_ENCRYPTION_KEY)
    if not stored.get(CA_ENCRYPTION_KEY):
        # The same kind of key for the devices service's per-organization CA keys.
        stored[CA_ENCRYPTION_KEY] = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()
        missing.append(CA_ENCRYPTION_KEY)
    if not stored.get(SECRET_ENCRYPTION_KEY):
        # And for alerting's webhook secrets (decision 64).
        key = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()
        stored[SECRET_ENCRYPTION_KEY] = key
        missing.append(SECRET_ENCRYPTION_KEY)
    if not stored.get(DOWNLOAD_SIGNING_KEY):
        # The gateway's export download links (decision 65): kid:secret.
        stored[DOWNLOAD_SIGNING_KEY] = "dev1:" + secrets.token_urlsafe(32)
        missing.append(DOWNLOAD_SIGNING_KEY)
    if missing or (path.stat().st_mode & 0o077):
        _write_private(path, json.dumps(stored, indent=2) + "\n")
    return stored
