"""Registration tokens and a device's certificates as deciders. No I/O."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import pytest

from outpost_contracts.base import Event
from outpost_contracts.devices import DeviceDecommissioned, DeviceRegistered, DeviceStatus
from outpost_contracts.errors import Conflict, Gone
from outpost_contracts.provisioning import (
    DeviceCertificateRenewed,
    DeviceCertificateRevoked,
    DeviceProvisioned,
    RegistrationTokenCreated,
    RegistrationTokenRedeemed,
    RegistrationTokenRevoked,
    TokenStatus,
)
from outpost_devices.app.provisioning import hash_token, new_token, token_org
from outpost_devices.domain import devices, registration_tokens

pytestmark = pytest.mark.unit
NOW = datetime(2026, 11, 21, tzinfo=UTC)
DEVICE = uuid4()


def _fold(evolve: object, events: list[Event], stream: UUID) -> object:
    state = None
    for e in events:
        state = evolve(state, e, stream)  # type: ignore[operator]
    return state


def _token(*more: Event) -> registration_tokens.RegistrationToken:
    created = RegistrationTokenCreated(
        device_id=DEVICE, device_name="d", expires_at=NOW + timedelta(hours=1)
    )
    return _fold(registration_tokens.evolve, [created, *more], uuid4())  # type: ignore[return-value]


def test_a_token_is_redeemed_once() -> None:
    redeem = registration_tokens.Redeem(certificate_serial="ab")
    [event] = registration_tokens.decide(_token(), redeem, NOW)
    assert event == RegistrationTokenRedeemed(device_id=DEVICE, certificate_serial="ab")
    used = _token(event)
    assert used.status(NOW) is TokenStatus.USED
    with pytest.raises(Gone):
        registration_tokens.decide(used, redeem, NOW)


def test_expired_revoked_and_unknown_tokens_are_gone() -> None:
    redeem = registration_tokens.Redeem(certificate_serial="ab")
    with pytest.raises(Gone):
        registration_tokens.decide(_token(), redeem, NOW + timedelta(hours=1))
    with pytest.raises(Gone):
        registration_tokens.decide(_token(RegistrationTokenRevoked()), redeem, NOW)
    with pytest.raises(Gone):
        registration_tokens.decide(None, redeem, NOW)


def test_revoking_is_idempotent_but_not_after_use() -> None:
    revoke = registration_tokens.Revoke()
    assert registration_tokens.decide(_token(), revoke, NOW) == [RegistrationTokenRevoked()]
    assert registration_tokens.decide(_token(RegistrationTokenRevoked()), revoke, NOW) == []
    used = _token(RegistrationTokenRedeemed(device_id=DEVICE, certificate_serial="ab"))
    with pytest.raises(Conflict):
        registration_tokens.decide(used, revoke, NOW)


def test_token_secret_names_its_organization() -> None:
    org = uuid4()
    token = new_token(org)
    assert token_org(token) == org and len(hash_token(token)) == 64
    for bad in ("", "rt_", "rt_nothex_x", "sk_live_abc", f"xx_{org.hex}_abc"):
        with pytest.raises(Gone):
            token_org(bad)


def _provision(serial: str) -> devices.ProvisionDevice:
    return devices.ProvisionDevice(
        certificate_id=uuid4(), serial=serial, not_before=NOW, not_after=NOW + timedelta(days=30)
    )


def _device(*more: Event) -> devices.Device:
    return _fold(devices.evolve, [DeviceRegistered(name="d"), *more], DEVICE)  # type: ignore[return-value]


def test_provisioning_moves_registered_to_provisioned_and_tracks_certificates() -> None:
    [provisioned] = devices.decide(_device(), _provision("aa"), NOW)
    assert isinstance(provisioned, DeviceProvisioned)
    state = _device(provisioned)
    assert state.status is DeviceStatus.PROVISIONED and state.certificates == ("aa",)
    renew = devices.RenewCertificate(
        certificate_id=uuid4(),
        serial="bb",
        not_before=NOW,
        not_after=NOW + timedelta(days=30),
        previous_serial="aa",
    )
    [renewed] = devices.decide(state, renew, NOW)
    assert isinstance(renewed, DeviceCertificateRenewed)
    state = _device(provisioned, renewed)
    assert state.certificates == ("aa", "bb")
    [revoked] = devices.decide(state, devices.RevokeCertificate(serial="aa"), NOW)
    assert revoked == DeviceCertificateRevoked(serial="aa")
    state = _device(provisioned, renewed, revoked)
    assert state.certificates == ("bb",)
    assert devices.decide(state, devices.RevokeCertificate(serial="aa"), NOW) == []
    with pytest.raises(Gone):  # renewing from a revoked certificate
        devices.decide(state, renew, NOW)


def test_decommissioning_revokes_every_certificate_and_refuses_new_ones() -> None:
    state = _device(
        DeviceProvisioned(
            certificate_id=uuid4(), serial="aa", not_before=NOW, not_after=NOW + timedelta(1)
        ),
        DeviceProvisioned(
            certificate_id=uuid4(), serial="bb", not_before=NOW, not_after=NOW + timedelta(1)
        ),
    )
    events = devices.decide(state, devices.Decommission(), NOW)
    assert events == [
        DeviceDecommissioned(),
        DeviceCertificateRevoked(serial="aa", reason="decommissioned"),
        DeviceCertificateRevoked(serial="bb", reason="decommissioned"),
    ]
    gone = _device(*[*state_events(state), *events])
    with pytest.raises(Gone):
        devices.decide(gone, _provision("cc"), NOW)


def state_events(state: devices.Device) -> list[Event]:
    return [
        DeviceProvisioned(
            certificate_id=uuid4(), serial=s, not_before=NOW, not_after=NOW + timedelta(1)
        )
        for s in state.certificates
    ]
