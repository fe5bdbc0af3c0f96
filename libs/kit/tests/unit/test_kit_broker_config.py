"""The dev broker's nats.conf: TLS with client certificates on both listeners, a user per
service (the callout's auth_users), a system account, and the ports still findable."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from outpost_kit.dev.stack import (
    _ALL_NATS_USERS,
    _MQTT_LISTEN,
    ALL_SERVICES,
    _nats_secret,
    broker_config,
)
from outpost_kit.infra.broker_pki import ensure_broker_pki
from outpost_kit.infra.nats import _ports_from_config, _render_config, _requires_tls

pytestmark = pytest.mark.unit


def test_the_config_requires_certificates_and_lists_every_service_user(tmp_path: Path) -> None:
    pki = ensure_broker_pki(tmp_path / "broker")
    passwords = {_nats_secret(u): f"pw-{u}" for u in _ALL_NATS_USERS}
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
    for service in (*ALL_SERVICES, "outpost-dev", "outpost-system"):
        assert f'"{service}"' in auth_users.group(1)
        assert f'password: "pw-{service}"' in config
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
