"""Base struct configuration shared by every message that crosses a process boundary.

Three families, each with the msgspec configuration its evolution rules need
(docs/style.md, "Contracts change by addition"):

- ``Contract``: replies, views and envelopes. camelCase on the wire, unknown fields ignored
  so an old reader skips what a newer writer added.
- ``Event``: event payloads, tagged with a versioned wire tag (``devices.DeviceRegistered.v1``);
  unknown fields ignored, a breaking change is a new ``.v2`` type published beside the old.
- ``Request``: commands and queries, which are also the HTTP request bodies: they forbid
  unknown fields so a typo or a mass-assignment attempt is a ``validation_error``.

``kw_only=True`` is repeated on every subclass because msgspec does not inherit it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, ClassVar

import msgspec


def whole(body: str) -> str:
    """A ``pattern`` for ``msgspec.Meta`` that only a whole string matches (decision 77).

    msgspec searches a pattern (``re.search``), and Python's ``$`` also matches before a
    final newline, so ``^[a-z]+$`` accepts ``"temp\\n"``. ``$(?!\\n)`` does not, and it is the
    same regex in ECMA-262 (JSON Schema, OpenAPI, the JavaScript a client validates with),
    where ``$`` is the end of the input already; ``\\Z`` would mean a literal ``Z`` there. The
    group keeps an alternation (``a|b``) inside both anchors."""
    return f"^(?:{body})$(?!\\n)"


def wire_tag(service: str, name: str, version: int) -> str:
    """The versioned wire tag of a message type: ``<service>.<Name>.v<version>``."""
    if not name[:1].isupper() or "." in name or "." in service:
        raise ValueError(f"bad wire tag parts: {service!r}, {name!r}")
    return f"{service}.{name}.v{version}"


# A point in time as a request states it: RFC 3339 with an offset (docs/api.md, "JSON"). A naive
# timestamp is a validation_error at the boundary, not a comparison that fails in a service.
Instant = Annotated[datetime, msgspec.Meta(tz=True)]


class Contract(msgspec.Struct, kw_only=True, frozen=True, rename="camel"):
    """Replies, views and envelopes: camelCase, unknown fields tolerated."""


class Event(Contract, kw_only=True, frozen=True, tag_field="type"):
    """An event payload. Subclasses pass ``tag=wire_tag(service, Name, version)``."""

    service: ClassVar[str] = ""


class Request(
    msgspec.Struct, kw_only=True, frozen=True, rename="camel", forbid_unknown_fields=True
):
    """A command or query, and the HTTP body it is read from: unknown fields are refused."""


class Empty(Contract, kw_only=True, frozen=True):
    """The reply of an operation that has nothing to say (HTTP 204)."""


def event_tag(event_type: type[Event]) -> str:
    """The wire tag of an event class."""
    tag = event_type.__struct_config__.tag
    if not isinstance(tag, str):
        raise TypeError(f"{event_type.__name__} has no string wire tag")
    return tag


def event_name(tag: str) -> tuple[str, str, int]:
    """Split a wire tag into (service, Name, version)."""
    service, name, version = tag.split(".")
    return service, name, int(version.removeprefix("v"))
