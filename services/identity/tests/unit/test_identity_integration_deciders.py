"""The integration aggregate (issue 23, ADR 0097): filters refused before anything is stored,
the deliver policy's start time, one consumer per group, rotation and revocation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest

from outpost_contracts import integrations
from outpost_contracts.errors import NotFound, ValidationFailed
from outpost_contracts.identity import (
    DeliverPolicy,
    IntegrationCreated,
    IntegrationCredentialRotated,
    IntegrationRevoked,
)
from outpost_identity.app.integrations import hash_password, new_password
from outpost_identity.domain import integrations as ig

pytestmark = pytest.mark.unit
NOW = datetime(2026, 12, 8, tzinfo=UTC)
ORG = uuid4()
H1, H2 = "a" * 64, "b" * 64


def _issue(**overrides: object) -> ig.IssueIntegration:
    fields: dict[str, object] = {
        "id": uuid4(),
        "org_id": ORG,
        "name": "billing",
        "password_hash": H1,
        "subjects": ("alerts.>", "devices.>", "readings.>"),
        "deliver_policy": DeliverPolicy.ALL,
    }
    fields.update(overrides)
    return ig.IssueIntegration(**fields)  # type: ignore[arg-type]


def _created(command: ig.IssueIntegration) -> ig.Integration:
    [event] = ig.decide(None, command, NOW)
    state = ig.evolve(None, event, command.id)
    assert state is not None
    return state


def test_create_names_the_user_consumers_and_the_organizations_subjects() -> None:
    command = _issue(groups=("default", "analytics"))
    [event] = ig.decide(None, command, NOW)
    assert isinstance(event, IntegrationCreated)
    assert event.user == integrations.user(command.id) and event.password_hash == H1
    assert event.consumers == (
        integrations.consumer(command.id, "default"),
        integrations.consumer(command.id, "analytics"),
    )
    assert all(f".{ORG}." in f for f in event.filters)
    assert f"outpost.evt.devices.{ORG}.>" in event.filters
    assert f"outpost.tel.{ORG}.>" in event.filters  # readings.> carries telemetry


def test_bad_filters_and_start_times_are_refused() -> None:
    for subjects in (("identity.>",), ("nothing.>",), ("alerts.NoSuchEvent",), ("telemetry.X",)):
        with pytest.raises(ValidationFailed):
            ig.decide(None, _issue(subjects=subjects), NOW)
    with pytest.raises(ValidationFailed):  # a private event named on its own
        ig.decide(None, _issue(subjects=("alerts.NotificationChannelCreated",)), NOW)
    with pytest.raises(ValidationFailed):
        ig.decide(None, _issue(deliver_policy=DeliverPolicy.BY_START_TIME), NOW)
    with pytest.raises(ValidationFailed):
        ig.decide(
            None,
            _issue(deliver_policy=DeliverPolicy.BY_START_TIME, start_time=NOW + timedelta(1)),
            NOW,
        )
    with pytest.raises(ValidationFailed):
        ig.decide(None, _issue(start_time=NOW), NOW)
    with pytest.raises(ValidationFailed):
        ig.decide(None, _issue(groups=("a", "a")), NOW)
    [ok] = ig.decide(None, _issue(deliver_policy=DeliverPolicy.BY_START_TIME, start_time=NOW), NOW)
    assert isinstance(ok, IntegrationCreated) and ok.start_time == NOW


def test_rotate_replaces_the_hash_and_revoke_ends_it() -> None:
    state = _created(_issue())
    [rotated] = ig.decide(state, ig.RotateCredential(password_hash=H2), NOW)
    assert isinstance(rotated, IntegrationCredentialRotated) and rotated.user == state.user
    state = ig.evolve(state, rotated, state.id)
    assert state is not None and state.password_hash == H2 and state.version == 2
    [revoked] = ig.decide(state, ig.RevokeIntegration(), NOW)
    assert isinstance(revoked, IntegrationRevoked)
    state = ig.evolve(state, revoked, state.id)
    assert state is not None and state.revoked
    for command in (ig.RevokeIntegration(), ig.RotateCredential(password_hash=H1)):
        with pytest.raises(NotFound):
            ig.decide(state, command, NOW)
    with pytest.raises(NotFound):
        ig.decide(None, ig.RevokeIntegration(), NOW)


def test_passwords_are_random_and_only_their_hash_is_kept() -> None:
    one, two = new_password(), new_password()
    assert one != two and one.startswith("opi_") and len(one) > 40
    assert hash_password(one) != hash_password(two) and len(hash_password(one)) == 64
