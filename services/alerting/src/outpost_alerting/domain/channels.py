"""Notification channels as a decider: create, change (a JSON merge patch), delete. No I/O,
no clock, no ids made here.

A channel is a WEBHOOK (``url`` and a ``secret``) or an EMAIL channel (``addresses``); its
type never changes. The secret is checked here (present, and only on a webhook) but never
put in an event: the handler seals it and keeps it beside the stream (ADR 0064).
Where a webhook URL may point (the SSRF guard, which needs DNS) is checked by the handler
before it decides.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import msgspec

from outpost_contracts import notifications as api
from outpost_contracts.base import Event
from outpost_contracts.errors import Conflict, NotFound, validation_error

STREAM_TYPE = "notification_channel"


class Delete(msgspec.Struct, frozen=True, kw_only=True):
    """Delete the channel (DELETE)."""


class Channel(msgspec.Struct, frozen=True, kw_only=True):
    id: UUID
    version: int
    type: api.ChannelType
    name: str
    enabled: bool
    url: str | None = None
    addresses: list[str] | None = None
    deleted: bool = False


Command = api.CreateNotificationChannel | api.NotificationChannelPatch | Delete

# API name → state attribute, in the order ``NotificationChannelUpdated.changed`` lists them.
FIELDS = {"name": "name", "url": "url", "addresses": "addresses", "enabled": "enabled"}


def check_create(cmd: api.CreateNotificationChannel) -> None:
    """Which fields go with which type (the handler asks before it resolves a URL)."""
    if cmd.type is api.ChannelType.WEBHOOK:
        if cmd.url is None:
            raise validation_error("url", "a WEBHOOK channel needs a url")
        if cmd.secret is None:
            raise validation_error("secret", "a WEBHOOK channel needs a secret to sign with")
        if cmd.addresses is not None:
            raise validation_error("addresses", "only an EMAIL channel has addresses")
    else:
        if not cmd.addresses:
            raise validation_error("addresses", "an EMAIL channel needs addresses")
        if cmd.url is not None:
            raise validation_error("url", "only a WEBHOOK channel has a url")
        if cmd.secret is not None:
            raise validation_error("secret", "only a WEBHOOK channel has a secret")


def check_patch(channel: Channel, patch: api.NotificationChannelPatch) -> None:
    if channel.type is api.ChannelType.WEBHOOK:
        if patch.addresses is not msgspec.UNSET:
            raise validation_error("addresses", "only an EMAIL channel has addresses")
    else:
        if patch.url is not msgspec.UNSET:
            raise validation_error("url", "only a WEBHOOK channel has a url")
        if patch.secret is not msgspec.UNSET:
            raise validation_error("secret", "only a WEBHOOK channel has a secret")


def _unique(addresses: list[str] | None) -> list[str] | None:
    """Addresses in their first order, each once (case-insensitively)."""
    if addresses is None:
        return None
    seen: set[str] = set()
    kept = []
    for address in addresses:
        if address.lower() not in seen:
            seen.add(address.lower())
            kept.append(address)
    return kept


def decide(state: Channel | None, command: Command, now: datetime) -> list[Event]:
    if isinstance(command, api.CreateNotificationChannel):
        if state is not None:
            raise Conflict("the notification channel already exists")
        check_create(command)
        return [
            api.NotificationChannelCreated(
                channel_type=command.type,
                name=command.name,
                enabled=command.enabled,
                url=command.url,
                addresses=_unique(command.addresses),
                has_secret=command.secret is not None,
            )
        ]
    if state is None or state.deleted:
        raise NotFound("no such notification channel")
    if isinstance(command, Delete):
        return [api.NotificationChannelDeleted()]
    check_patch(state, command)
    changes: dict[str, Any] = {}
    for api_name, attr in FIELDS.items():
        value = getattr(command, attr)
        if value is msgspec.UNSET:
            continue
        if attr == "addresses":
            value = _unique(value)
        if value != getattr(state, attr):
            changes[api_name] = value
    changed = list(changes)
    if command.secret is not msgspec.UNSET:
        changed.append("secret")  # a new secret is always a change; its value is not told
    if not changed:
        return []
    return [
        api.NotificationChannelUpdated(
            changed=changed, **{FIELDS[k]: v for k, v in changes.items()}
        )
    ]


def evolve(state: Channel | None, event: Event, stream_id: UUID) -> Channel | None:
    if isinstance(event, api.NotificationChannelCreated):
        return Channel(
            id=stream_id,
            version=1,
            type=event.channel_type,
            name=event.name,
            enabled=event.enabled,
            url=event.url,
            addresses=event.addresses,
        )
    assert state is not None, f"{type(event).__name__} before the channel was created"
    if isinstance(event, api.NotificationChannelUpdated):
        values = {FIELDS[k]: getattr(event, FIELDS[k]) for k in event.changed if k in FIELDS}
        return msgspec.structs.replace(state, version=state.version + 1, **values)
    if isinstance(event, api.NotificationChannelDeleted):
        return msgspec.structs.replace(state, version=state.version + 1, deleted=True)
    return msgspec.structs.replace(state, version=state.version + 1)
