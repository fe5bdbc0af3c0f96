"""What an integration may read (issue 23, ADR 0097): its organization's subjects only, never
an event with a private field, and broker permissions that allow no publish but its own
consumers' pulls and acks."""

from __future__ import annotations

from uuid import uuid4

import pytest

from outpost_contracts import asyncapi, integrations
from outpost_contracts.base import event_name
from outpost_contracts.errors import ValidationFailed

pytestmark = pytest.mark.unit
ORG = uuid4()


def _covers(filters: tuple[str, ...], subject: str) -> bool:
    def match(pattern: str) -> bool:
        p, s = pattern.split("."), subject.split(".")
        for i, token in enumerate(p):
            if token == ">":
                return len(s) > i
            if i >= len(s) or (token != "*" and token != s[i]):
                return False
        return len(p) == len(s)

    return any(match(f) for f in filters)


def test_every_area_is_the_organizations_and_no_private_event_is_delivered() -> None:
    every = tuple(f"{area}.>" for area in (*integrations.AREAS, integrations.TELEMETRY_AREA))
    filters = integrations.filters(ORG, every)
    other = uuid4()
    for event_type in asyncapi.event_types():
        tag = event_type.__struct_config__.tag
        service, name, version = event_name(tag)  # type: ignore[arg-type]
        mine = f"outpost.evt.{service}.{ORG}.{name}.v{version}"
        theirs = f"outpost.evt.{service}.{other}.{name}.v{version}"
        assert not _covers(filters, theirs)
        if asyncapi.private_fields(event_type) or service == "identity":
            assert not _covers(filters, mine), tag
        else:
            assert _covers(filters, mine), tag
    assert _covers(filters, f"outpost.tel.{ORG}.{uuid4()}")
    assert not _covers(filters, f"outpost.tel.{other}.{uuid4()}")


def test_filters_never_overlap_and_unknown_ones_are_refused() -> None:
    found = integrations.filters(ORG, ["alerts.AlertOpened", "alerts.>", "readings.>"])
    assert len(found) == len(set(found))
    assert f"outpost.evt.alerting.{ORG}.AlertOpened.*" in found  # from alerts.>, once
    assert integrations.filters(ORG, ["alerts.AlertOpened"]) == (
        f"outpost.evt.alerting.{ORG}.AlertOpened.*",
    )
    for bad in ("identity.>", "alerts.Nope", "alerts.NotificationChannelUpdated", "x.>"):
        with pytest.raises(ValidationFailed):
            integrations.filters(ORG, [bad])


def test_permissions_are_the_consumers_pulls_acks_and_own_inbox() -> None:
    iid = uuid4()
    name = integrations.consumer(iid, "default")
    perms = integrations.permissions(iid, [name])
    assert perms == {
        "pub": {
            "allow": [
                f"$JS.API.CONSUMER.INFO.PUBLIC.{name}",
                f"$JS.API.CONSUMER.MSG.NEXT.PUBLIC.{name}",
                f"$JS.ACK.PUBLIC.{name}.>",
            ]
        },
        "sub": {"allow": [f"_INBOX.integration-{iid.hex}.>"]},
    }
    assert integrations.integration_of(integrations.user(iid)) == iid
    assert integrations.integration_of("device:x") is None
    assert integrations.integration_of("integration-nope") is None
