"""What an audit entry may show of an event: names stay, credential material never does."""

from __future__ import annotations

import pytest

from outpost_kit.audit import _scrub

pytestmark = pytest.mark.unit


def test_credential_fields_are_dropped_and_names_called_key_are_kept() -> None:
    data = {
        "type": "devices.SensorDeclared.v1",
        "key": "temperature",
        "deviceId": "d",
        "keyHash": "x",
        "refreshTokenHash": "x",
        "secret": "x",
        "clientSecret": "x",
        "password": "x",
        "token": "x",
        "apiKey": "x",
        "privateKey": "x",
        "encryptedCaKey": "x",
        "publicKeyPem": "kept: public",
    }
    assert _scrub(data) == {"key": "temperature", "deviceId": "d", "publicKeyPem": "kept: public"}
