"""The dev broker's nats.conf: TLS with client certificates on both listeners, a user per
service (the callout's auth_users), a system account, and the ports still findable."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from outpost_contracts import access
from outpost_devkit.dev.stack import _MQTT_LISTEN
from outpost_devkit.infra.nats import _ports_from_config, _render_config, _requires_tls
from outpost_kit.broker_pki import ensure_broker_pki
from outpost_kit.material import (
    _ALL_NATS_USERS,
    ALL_SERVICES,
    _nats_secret,
    broker_config,
    ensure_secrets,
    nats_login,
    nats_slots,
    rotate_nats_password,
)

pytestmark = pytest.mark.unit


def test_the_config_requires_certificates_and_lists_every_service_user(tmp_path: Path) -> None:
    pki = ensure_broker_pki(tmp_path / "broker")
    passwords = {_nats_secret(s): f"pw-{s}" for u in _ALL_NATS_USERS for s in nats_slots(u)}
    extra = broker_config(pki, 1883, passwords)
    config = _render_config(tmp_path, 4222, 8222, "outpost-dev", extra)

    assert _requires_tls(config) and _ports_from_config(config) == (4222, 8222)
    match = _MQTT_LISTEN.search(config)
    assert match is not None and match.group(1) == "1883"
    assert config.count("verify: true") == 2  # client listener and MQTT listener
    assert config.count(f'ca_file: "{pki.client_ca_file}"') == 2
    assert f'issuer: "{pki.issuer_public_key}"' in config
    auth_users = re.search(r"auth_users: \[(.*)\]", config)
    assert auth_users is not None
    for user in (*ALL_SERVICES, "outpost-dev", "outpost-system"):
        for slot in nats_slots(user):
            assert f'"{slot}"' in auth_users.group(1)
            assert f'password: "pw-{slot}"' in config
    assert "system_account: SYS" in config


def test_the_material_is_made_once_and_private(tmp_path: Path) -> None:
    first = ensure_broker_pki(tmp_path)
    seed = first.issuer_seed
    again = ensure_broker_pki(tmp_path)
    assert again.issuer_seed == seed and seed.startswith("SA")
    for path in tmp_path.iterdir():
        assert path.stat().st_mode & 0o077 == 0, path
    bundle = first.client_ca_file.read_text()
    assert bundle.count("BEGIN CERTIFICATE") == 2


def _user_entries(config: str) -> dict[str, dict[str, object]]:
    """Each ``{user: ..., password: ..., permissions: ...}`` entry of the users list."""
    found: dict[str, dict[str, object]] = {}
    for match in re.finditer(
        r'\{user: ("[^"]*"), password: ("[^"]*")(?:, permissions: (.*))?\},?$', config, re.MULTILINE
    ):
        found[json.loads(match.group(1))] = {
            "password": json.loads(match.group(2)),
            "permissions": json.loads(match.group(3)) if match.group(3) else None,
        }
    return found


def test_every_service_slot_has_the_permissions_its_contracts_imply(tmp_path: Path) -> None:
    """decision 74: both login slots of a service carry exactly ``access.permissions``; the
    tooling (stream administrator) user has no restriction."""
    pki = ensure_broker_pki(tmp_path / "broker")
    config = broker_config(pki, 1883, ensure_secrets(tmp_path / "secrets.json"))
    entries = _user_entries(config)
    for service in ALL_SERVICES:
        perms = access.permissions(service)
        for slot in nats_slots(service):
            rendered = entries[slot]["permissions"]
            assert rendered == {
                "publish": {"allow": list(perms.publish)},
                "subscribe": {"allow": list(perms.subscribe)},
                "allow_responses": True,
            }, slot
    assert entries["outpost-dev"]["permissions"] is None
    for slot in nats_slots("outpost-system"):
        system = access.system_permissions()
        assert entries[slot]["permissions"] == {
            "publish": {"allow": list(system.publish)},
            "subscribe": {"allow": list(system.subscribe)},
        }


def test_a_rotation_keeps_the_old_password_until_it_is_retired(tmp_path: Path) -> None:
    path = tmp_path / "secrets.json"
    pki = ensure_broker_pki(tmp_path / "broker")
    before = ensure_secrets(path)
    slot, old = nats_login(before, "alerting")
    assert slot == "alerting"

    assert rotate_nats_password(path, "alerting") == "alerting-b"
    rotated = ensure_secrets(path)
    new_slot, new = nats_login(rotated, "alerting")
    assert (new_slot, new != old) == ("alerting-b", True)
    entries = _user_entries(broker_config(pki, 1883, rotated))
    # Both work until the retirement: the running processes keep their connections.
    assert entries["alerting"]["password"] == old and entries["alerting-b"]["password"] == new
    auth_users_before = re.search(r"auth_users: .*", broker_config(pki, 1883, before))
    auth_users_after = re.search(r"auth_users: .*", broker_config(pki, 1883, rotated))
    assert auth_users_before is not None and auth_users_after is not None
    # The auth_callout block is unchanged, so nats-server reloads the new users.
    assert auth_users_before.group(0) == auth_users_after.group(0)

    assert rotate_nats_password(path, "alerting", retire=True) == "alerting-b"
    retired = ensure_secrets(path)
    entries = _user_entries(broker_config(pki, 1883, retired))
    assert entries["alerting"]["password"] not in (old, new)
    assert entries["alerting-b"]["password"] == new
    with pytest.raises(ValueError):
        rotate_nats_password(path, "nobody")
