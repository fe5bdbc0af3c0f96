"""What each process may do on the broker, derived from the contracts (decision 74).

Every service's NATS user gets exactly the subjects its declarations imply, computed here and
nowhere else (the dev stack, compose and Kubernetes render ``permissions(service)`` into
nats-server's configuration):

- publish: the subjects of the streams it owns (its events; exports' job queue; readings'
  HTTP telemetry; not nats-server's MQTT message stream, which only nats-server writes),
  the operations it *calls* (``CALLS``), the JetStream API of its own durable consumers
  (next message, info, acks) and of its own buckets, plus the few core subjects it
  declares in ``CORE``;
- subscribe: the operations it *serves* (each one's subject), its own inbox prefix
  (``_INBOX.<service>.>``: nobody reads another's replies), and ``CORE``;
- replies to the requests it receives (``allow_responses``), so a responder answers on the
  caller's inbox without being able to publish on inboxes in general.

Creating, updating, purging and deleting streams and durable consumers is not in any
service's list: that is the stream administrator's (``outpost-admin streams apply``, the
dev stack, the migrations job), whose user is not described here.

A new operation is callable by the gateway at once (it calls every operation not in
``INTERNAL``); any other caller must name it in ``CALLS``, or the broker refuses the call.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType
from typing import Any

from outpost_contracts import (
    alerting,
    audit,
    commands,
    device_config,
    devices,
    exports,
    fleet,
    identity,
    notifications,
    presence,
    provisioning,
    readings,
    reference_pairs,
    registry,
    streams,
    subjects,
)
from outpost_contracts import annotations as annotation_ops
from outpost_contracts.rpc import Operation

# Every process with a broker user of its own (the domain services and the gateway).
PROCESSES: tuple[str, ...] = (*subjects.SERVICES, "gateway")

# The modules that declare operations (checked against the package by a unit test).
OPERATION_MODULES: tuple[ModuleType, ...] = (
    alerting,
    annotation_ops,
    commands,
    device_config,
    devices,
    exports,
    fleet,
    identity,
    notifications,
    presence,
    provisioning,
    readings,
    reference_pairs,
    registry,
)

# The object store bucket of export archives: exports writes it, the gateway reads it
# (OUTPOST_EXPORTS_BUCKET / OUTPOST_GATEWAY_EXPORTS_BUCKET default to it; decision 65).
EXPORTS_BUCKET = "outpost-exports"

# nats-server's auth callout subject: the devices service answers it for every device.
AUTH_CALLOUT = "$SYS.REQ.USER.AUTH"


def operations() -> tuple[Operation[Any, Any], ...]:
    """Every operation the contracts declare, once each, in a stable order."""
    found: dict[str, Operation[Any, Any]] = {}
    for module in OPERATION_MODULES:
        for value in vars(module).values():
            if isinstance(value, Operation):
                found.setdefault(value.subject, value)
    for op in audit.LIST_AUDIT_LOG.values():
        found.setdefault(op.subject, op)
    return tuple(found[s] for s in sorted(found))


# Operations only services call (bulk reads for export jobs; what fleet and devices ask of
# each other, issue 21): never reached from the API.
INTERNAL: frozenset[str] = frozenset(
    op.subject
    for op in (
        readings.STREAM_READINGS,
        annotation_ops.LIST_ANNOTATIONS,
        fleet.RESOLVE_DEVICE_PROFILE,
        device_config.APPLY_DEVICE_PROFILE,
        device_config.SET_FLEET_DESIRED_STATES,
    )
)

_SCOPE_LOOKUPS = (devices.GET_DEVICE, registry.GET_GROUP, registry.GET_SITE)

# The operations each service calls (found where it builds its requests: readings' and
# alerting's bootstrap, exports' adapters/sources.py). The gateway's are computed below.
CALLS: dict[str, tuple[Operation[Any, Any], ...]] = {
    "identity": (),
    # A device's profileId set by a PATCH: the profile, resolved (issue 21).
    "devices": (fleet.RESOLVE_DEVICE_PROFILE,),
    "readings": (devices.GET_DEVICE,),
    "alerting": _SCOPE_LOOKUPS,
    "exports": (
        *_SCOPE_LOOKUPS,
        devices.LIST_DEVICES,
        readings.STREAM_READINGS,
        annotation_ops.LIST_ANNOTATIONS,
        alerting.LIST_ALERTS,
        alerting.LIST_EVENTS,
    ),
    # What a device profile's change and the effective desired states ask of devices
    # (issue 21), in batches of at most device_config.MAX_BATCH.
    # and a binding's target checked with the devices service (ADR 0090).
    "fleet": (
        *_SCOPE_LOOKUPS,
        device_config.APPLY_DEVICE_PROFILE,
        device_config.SET_FLEET_DESIRED_STATES,
    ),
}


@dataclass(frozen=True)
class Core:
    """Core (non-JetStream) subjects a process uses beyond its streams and operations."""

    publish: tuple[str, ...] = ()
    subscribe: tuple[str, ...] = ()


CORE: dict[str, Core] = {
    "devices": Core(
        # Commands to devices (a request whose reply never comes: devices may not publish
        # on inboxes) and their answers; last-seen from telemetry; its own connection events
        # (core subscriptions of its own stream's subjects); an organization's suspension and
        # reinstatement, heard at once by every replica to kick and refuse its devices
        # (decision 76); the auth callout.
        publish=(subjects.COMMANDS_ALL,),
        subscribe=(
            subjects.COMMAND_ACKS_ALL,
            subjects.TELEMETRY_ALL,
            subjects.service_events("devices"),
            subjects.event_filter("identity", "OrganizationSuspended"),
            subjects.event_filter("identity", "OrganizationReinstated"),
            AUTH_CALLOUT,
        ),
    ),
}


def calls(service: str) -> tuple[Operation[Any, Any], ...]:
    """The operations ``service`` calls."""
    if service == "gateway":
        return tuple(op for op in operations() if op.subject not in INTERNAL)
    return CALLS[service]


_CALLED: dict[str, frozenset[str]] = {}


def may_call(process: str, op: Operation[Any, Any]) -> bool:
    """Whether ``process`` declares that it calls ``op`` (the broker refuses it otherwise)."""
    called = _CALLED.get(process)
    if called is None:
        called = _CALLED[process] = frozenset(o.subject for o in calls(process))
    return op.subject in called


def serves(service: str) -> tuple[Operation[Any, Any], ...]:
    """The operations ``service`` answers."""
    return tuple(op for op in operations() if op.service == service)


def inbox_prefix(process: str) -> str:
    """The inbox prefix of ``process``'s connections (nats-py's ``inbox_prefix``)."""
    return f"_INBOX.{process}"


@dataclass(frozen=True)
class Permissions:
    publish: tuple[str, ...]
    subscribe: tuple[str, ...]
    # Publish to the reply subject of a request received (answers, at most one each).
    allow_responses: bool = True


def _js(*tokens: str) -> str:
    return "$JS.API." + ".".join(tokens)


def _bucket(bucket: str, *, write: bool) -> tuple[str, ...]:
    """The JetStream API an object store bucket's reader or writer (nats-py) uses."""
    stream = f"OBJ_{bucket}"
    read = (
        _js("STREAM", "INFO", stream),
        _js("STREAM", "MSG", "GET", stream),
        _js("DIRECT", "GET", stream),
        _js("DIRECT", "GET", stream, ">"),
    )
    if not write:
        return read
    return (
        *read,
        # nats-py creates the bucket on first use, puts chunks and metadata, purges an
        # object's chunks on delete and lists with an ordered consumer.
        _js("STREAM", "CREATE", stream),
        _js("STREAM", "PURGE", stream),
        _js("CONSUMER", "CREATE", stream),
        _js("CONSUMER", "CREATE", stream, ">"),
        _js("CONSUMER", "DELETE", stream, ">"),
        f"$O.{bucket}.>",
        f"$JS.FC.{stream}.>",
    )


def permissions(service: str) -> Permissions:
    """The publish and subscribe allow lists of ``service``'s broker user."""
    if service not in PROCESSES:
        raise KeyError(service)
    publish: list[str] = []
    subscribe: list[str] = [f"{inbox_prefix(service)}.>"]
    for stream in streams.streams_of(service):
        if not stream.written_by_broker:
            publish.extend(stream.subjects)
        # The service checks at start-up that its streams exist (the administrator makes them).
        publish.append(_js("STREAM", "INFO", stream.name))
    publish.extend(op.subject for op in calls(service))
    subscribe.extend(op.subject for op in serves(service))
    for spec in streams.consumers_of(service):
        if spec.durable:
            publish += [
                _js("CONSUMER", "INFO", spec.stream, spec.name),
                _js("CONSUMER", "MSG", "NEXT", spec.stream, spec.name),
                f"$JS.ACK.{spec.stream}.{spec.name}.>",
            ]
        else:
            # An ordered consumer of its own, made by each replica (nats-py: unnamed).
            publish += [
                _js("STREAM", "INFO", spec.stream),
                _js("CONSUMER", "CREATE", spec.stream),
                f"$JS.FC.{spec.stream}.>",
            ]
    if service == "exports":
        publish += _bucket(EXPORTS_BUCKET, write=True)
    if service == "gateway":
        publish += _bucket(EXPORTS_BUCKET, write=False)
    core = CORE.get(service, Core())
    publish += core.publish
    subscribe += core.subscribe
    return Permissions(publish=_unique(publish), subscribe=_unique(subscribe))


def system_permissions() -> Permissions:
    """The system-account user the devices service follows device connections with (their
    CONNECT/DISCONNECT advisories and the servers' CONNZ, for presence) and closes a
    decommissioned device's connections with (KICK); its inboxes are devices'."""
    return Permissions(
        publish=(
            "$SYS.REQ.SERVER.PING.CONNZ",
            "$SYS.REQ.SERVER.*.CONNZ",
            "$SYS.REQ.SERVER.*.KICK",
        ),
        subscribe=(
            "$SYS.ACCOUNT.*.CONNECT",
            "$SYS.ACCOUNT.*.DISCONNECT",
            f"{inbox_prefix('devices')}.>",
        ),
        allow_responses=False,
    )


def _unique(items: list[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))
