"""What an integration may read on the broker (issue 23, ADR 0097), computed once here for
identity (which issues integrations and names their consumers) and the broker's auth
callout (devices, which grants a connection its permissions).

An integration subscribes with API filters, ``<area>.>`` or ``<area>.<EventName>``:

- ``alerts``, ``devices``, ``readings``, ``fleet``, ``exports``: the events of that service
  in the organization (``alerts`` is alerting's, with notification channels);
  ``readings.>`` also carries the organization's telemetry as devices publish it.
- ``telemetry.>``: the organization's telemetry alone.
- identity's events are no area: sessions, API keys, OAuth clients and integrations are the
  platform's own bookkeeping, not what an organization's service subscribes to.

Each filter becomes broker subjects of the organization only. An event type with a field of
``asyncapi.PRIVATE_FIELDS`` (a hash, a webhook URL) is never among them: ``<area>.>`` of a
service with such events is spelled out as one subject per public event type, so the broker
never delivers a private field to an integration (the public projection is "those events
are not delivered"; their public facts are in the other events of the area).
"""

from __future__ import annotations

import functools
from uuid import UUID

from outpost_contracts import access, asyncapi, subjects
from outpost_contracts.base import event_name
from outpost_contracts.errors import validation_error

# The API's areas and the service whose events each one is.
AREAS: dict[str, str] = {
    "alerts": "alerting",
    "devices": "devices",
    "readings": "readings",
    "fleet": "fleet",
    "exports": "exports",
}
TELEMETRY_AREA = "telemetry"

# The stream integrations' durable consumers are made on (ADR 0097).
STREAM = access.INTEGRATIONS_STREAM
DEFAULT_GROUP = "default"
USER_PREFIX = "integration-"


@functools.cache
def _event_names() -> dict[str, tuple[tuple[str, ...], frozenset[str]]]:
    """{service: (every event name, the private ones)} from the contracts."""
    found: dict[str, tuple[list[str], set[str]]] = {}
    for event_type in asyncapi.event_types():
        service, name, _ = event_name(event_type.__struct_config__.tag)  # type: ignore[arg-type]
        names, private = found.setdefault(service, ([], set()))
        if name not in names:
            names.append(name)
        if asyncapi.private_fields(event_type):
            private.add(name)
    return {s: (tuple(sorted(n)), frozenset(p)) for s, (n, p) in found.items()}


def public_events(service: str) -> tuple[str, ...]:
    """The names of ``service``'s event types an integration may receive."""
    names, private = _event_names().get(service, ((), frozenset()))
    return tuple(n for n in names if n not in private)


def private_events(service: str) -> frozenset[str]:
    return _event_names().get(service, ((), frozenset()))[1]


def _area_subjects(area: str, event: str, org_id: UUID) -> list[str]:
    if area == TELEMETRY_AREA:
        if event != ">":
            raise validation_error("subjects", f"'{area}' takes only '{area}.>'")
        return [subjects.organization_telemetry(org_id)]
    service = AREAS.get(area)
    if service is None:
        known = ", ".join(sorted([*AREAS, TELEMETRY_AREA]))
        raise validation_error("subjects", f"no area '{area}' (known: {known})")
    prefix = f"{subjects.PREFIX}.evt.{service}.{org_id}"
    if event == ">":
        found = (
            [f"{prefix}.{name}.*" for name in public_events(service)]
            if private_events(service)
            else [subjects.organization_events(service, org_id)]
        )
        if area == "readings":
            found.append(subjects.organization_telemetry(org_id))
        return found
    if event in private_events(service):
        raise validation_error("subjects", f"'{area}.{event}' carries private fields")
    if event not in public_events(service):
        raise validation_error("subjects", f"'{area}' has no event '{event}'")
    return [f"{prefix}.{event}.*"]


def filters(org_id: UUID, requested: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """The broker subjects of ``org_id`` the API filters ``requested`` name, without
    overlaps (a JetStream consumer refuses overlapping filters): ``<area>.>`` absorbs the
    area's single events. A validation error on ``subjects`` for an unknown area or event."""
    wide = {f.split(".", 1)[0] for f in requested if f.endswith(".>")}
    found: list[str] = []
    for api_filter in requested:
        area, _, event = api_filter.partition(".")
        if event != ">" and area in wide:
            continue
        found.extend(_area_subjects(area, event, org_id))
    return tuple(dict.fromkeys(found))


def user(integration_id: UUID) -> str:
    """The broker user name an integration connects with."""
    return f"{USER_PREFIX}{integration_id}"


def integration_of(user_name: str) -> UUID | None:
    """The integration a broker user name names, or None (a device, anything else)."""
    if not user_name.startswith(USER_PREFIX):
        return None
    try:
        return UUID(user_name.removeprefix(USER_PREFIX))
    except ValueError:
        return None


def consumer(integration_id: UUID, group: str) -> str:
    """The durable consumer of one group of an integration on ``STREAM``."""
    return f"integration-{integration_id.hex}-{group}"


def inbox_prefix(integration_id: UUID) -> str:
    """The only inboxes an integration's connections may subscribe to."""
    return f"_INBOX.integration-{integration_id.hex}"


def permissions(integration_id: UUID, consumers: list[str] | tuple[str, ...]) -> dict[str, object]:
    """The broker permissions of an integration's connection (the auth callout's answer):
    pull from and acknowledge on its own consumers, read its own inboxes; nothing else (no
    publish, no other JetStream API, no core subscription to any event subject)."""
    js = "$JS.API.CONSUMER"
    publish: list[str] = []
    for name in consumers:
        publish += [
            f"{js}.INFO.{STREAM}.{name}",
            f"{js}.MSG.NEXT.{STREAM}.{name}",
            f"$JS.ACK.{STREAM}.{name}.>",
        ]
    return {
        "pub": {"allow": publish},
        "sub": {"allow": [f"{inbox_prefix(integration_id)}.>"]},
    }
