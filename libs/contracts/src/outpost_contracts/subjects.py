"""The one subject builder. Nobody writes a subject string by hand.

Layout (all under the ``outpost`` prefix):

- ``outpost.evt.<service>.<org>.<Name>.v<N>``   domain events, one stream per service
- ``outpost.rpc.<service>.<Operation>``          request/reply, queue group per service
- ``outpost.tel.<org>.<device>``                 device telemetry (TELEMETRY stream)
- ``outpost.cmd.<org>.<device>``                 commands to a device; ``.ack`` for its answers
- ``outpost.work.<service>.<org>.<id>``           work queue items (EXPORT_JOBS)

Organization and device ids are UUID strings: valid subject tokens and MQTT topic levels.
"""

from __future__ import annotations

import functools
from uuid import UUID

from outpost_contracts.base import event_name

PREFIX = "outpost"
SERVICES = ("identity", "devices", "readings", "alerting", "exports", "fleet")


def _token(value: str | UUID) -> str:
    text = str(value)
    if not text or any(c in text for c in ".*> \t\r\n"):
        raise ValueError(f"not a subject token: {text!r}")
    return text


def event(tag: str, org_id: str | UUID) -> str:
    """The subject an event with wire tag ``tag`` of organization ``org_id`` is published on."""
    service, name, version = event_name(tag)
    return f"{PREFIX}.evt.{service}.{_token(org_id)}.{name}.v{version}"


def event_filter(service: str, name: str | None = None) -> str:
    """A filter for every event of ``service``, or every version of one event type."""
    _token(service)
    if name is None:
        return f"{PREFIX}.evt.{service}.>"
    return f"{PREFIX}.evt.{service}.*.{_token(name)}.*"


def service_events(service: str) -> str:
    return event_filter(service)


def organization_events(service: str, org_id: str | UUID) -> str:
    """A filter for every event of ``service`` in one organization (what an integration of
    that organization subscribes to, issue 23)."""
    return f"{PREFIX}.evt.{_token(service)}.{_token(org_id)}.>"


def rpc(service: str, operation: str) -> str:
    return f"{PREFIX}.rpc.{_token(service)}.{_token(operation)}"


def telemetry(org_id: str | UUID, device_id: str | UUID) -> str:
    return f"{PREFIX}.tel.{_token(org_id)}.{_token(device_id)}"


TELEMETRY_ALL = f"{PREFIX}.tel.>"


def organization_telemetry(org_id: str | UUID) -> str:
    """A filter for the telemetry of every device of one organization."""
    return f"{PREFIX}.tel.{_token(org_id)}.>"


def work(service: str, org_id: str | UUID, item_id: str | UUID) -> str:
    """The subject of one work-queue item of ``service`` (an export job)."""
    return f"{PREFIX}.work.{_token(service)}.{_token(org_id)}.{_token(item_id)}"


def work_all(service: str) -> str:
    return f"{PREFIX}.work.{_token(service)}.>"


def timeline(org_id: str | UUID) -> str:
    """The subject alerting's outbox announces an organization's new timeline entries on
    (``alerting.TimelineAdvanced``; the gateway's live ``/events/stream``, decision 96)."""
    return f"{PREFIX}.timeline.{_token(org_id)}"


TIMELINE_ALL = f"{PREFIX}.timeline.*"


def parse_timeline(subject: str) -> str:
    """The organization id of a ``timeline`` subject."""
    parts = subject.split(".")
    if len(parts) != 3 or parts[0] != PREFIX or parts[1] != "timeline":
        raise ValueError(f"not a timeline subject: {subject!r}")
    return parts[2]


def parse_telemetry(subject: str) -> tuple[str, str]:
    """(org_id, device_id) of a telemetry subject; ValueError if it is not one."""
    parts = subject.split(".")
    if len(parts) != 4 or parts[0] != PREFIX or parts[1] != "tel":
        raise ValueError(f"not a telemetry subject: {subject!r}")
    return parts[2], parts[3]


@functools.lru_cache(maxsize=65_536)
def telemetry_device(subject: str) -> tuple[UUID, UUID]:
    """(org_id, device_id) of a telemetry subject as UUIDs, parsed once per device rather
    than per message (the telemetry consumers' hot path); ValueError if it is not one."""
    org, device = parse_telemetry(subject)
    return UUID(org), UUID(device)


def command(org_id: str | UUID, device_id: str | UUID) -> str:
    return f"{PREFIX}.cmd.{_token(org_id)}.{_token(device_id)}"


def command_ack(org_id: str | UUID, device_id: str | UUID) -> str:
    return command(org_id, device_id) + ".ack"


COMMANDS_ALL = f"{PREFIX}.cmd.*.*"
COMMAND_ACKS_ALL = f"{PREFIX}.cmd.*.*.ack"


def parse_command_ack(subject: str) -> tuple[str, str]:
    """(org id, device id) of a command-ack subject; ValueError for anything else."""
    parts = subject.split(".")
    if len(parts) != 5 or parts[0] != PREFIX or parts[1] != "cmd" or parts[4] != "ack":
        raise ValueError(f"not a command-ack subject: {subject}")
    return parts[2], parts[3]


def mqtt_topic(subject: str) -> str:
    """The MQTT topic nats-server maps to a subject (``/`` for ``.``)."""
    return subject.replace(".", "/")


# nats-server's MQTT side (decision 82). It stores every QoS 1 and 2 PUBLISH in its own
# stream ``$MQTT_msgs`` under ``$MQTT.msgs.<subject>`` before it sends the PUBACK, and marks
# the message it publishes on ``<subject>`` with the header ``Nmqtt-Pub: <qos>``: that core
# publish is what TELEMETRY captures, and it is lost when TELEMETRY has no leader.
MQTT_MESSAGES_STREAM = "$MQTT_msgs"
MQTT_STORED_PREFIX = "$MQTT.msgs."
MQTT_QOS_HEADER = "Nmqtt-Pub"
MQTT_STORED_TELEMETRY = MQTT_STORED_PREFIX + TELEMETRY_ALL


def unstored(subject: str) -> str:
    """The subject a message of ``$MQTT_msgs`` was published on (``subject`` itself for any
    other)."""
    return subject.removeprefix(MQTT_STORED_PREFIX)


def mqtt_stored(headers: dict[str, str] | None) -> bool:
    """Whether a message with these headers is an MQTT QoS 1 or 2 publish, which nats-server
    also stored in ``$MQTT_msgs`` before acknowledging it (QoS 0 is not stored there)."""
    qos = (headers or {}).get(MQTT_QOS_HEADER, "")
    return qos[:1] in ("1", "2")
