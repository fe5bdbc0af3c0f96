"""JetStream streams and consumers, declared as data (docs/architecture.md principle 5).

The stream administrator applies these idempotently (``outpost-admin streams apply``, the
dev stack, the migrations job); services only wait for theirs, their broker users may not
create, change, purge or delete streams (decision 74, ``outpost_contracts.access``).
Durable consumers start from the beginning of their stream so a new consumer rebuilds its
local view from history.
"""

from __future__ import annotations

from typing import Literal

import msgspec

from outpost_contracts import subjects


class StreamSpec(msgspec.Struct, kw_only=True, frozen=True):
    name: str
    subjects: tuple[str, ...]
    owner: str
    description: str = ""
    storage: Literal["file", "memory"] = "file"
    max_age_seconds: float = 0  # 0: keep forever (control-plane history)
    max_bytes: int = -1
    duplicate_window_seconds: float = 120
    # "always" makes JetStream fsync every write; production sets it server-wide for
    # control-plane streams (docs/design/reliability.md). Recorded here so operators see the intent.
    control_plane: bool = True
    # "workqueue": a message is removed once acknowledged, and each one is consumed by one
    # consumer (the export jobs); "limits": kept by age and size (event history);
    # "interest": kept while a consumer has not acknowledged it, not stored at all when no
    # consumer's filter matches (nats-server's MQTT message stream).
    retention: Literal["limits", "workqueue", "interest"] = "limits"
    # nats-server writes it (MQTT): nobody else publishes on its subjects; the administrator
    # creates it ahead with nats-server's own settings so that the consumers on it exist
    # before the first message (decision 82).
    written_by_broker: bool = False
    # Streams nats-server copies into this one (no subjects of its own then): the PUBLIC
    # stream integrations read (ADR 0097).
    sources: tuple[str, ...] = ()


class ConsumerSpec(msgspec.Struct, kw_only=True, frozen=True):
    """A consumer of a stream. ``durable=None`` means an ordered, ephemeral consumer that each
    process replica runs on its own (e.g. the gateway's credential cache)."""

    stream: str
    name: str
    owner: str
    filter_subjects: tuple[str, ...] = ()
    durable: bool = True
    ack_wait_seconds: float = 30
    max_deliver: int = 20
    max_ack_pending: int = 10_000
    deliver_policy: Literal["all", "new"] = "all"
    description: str = ""


def _service_stream(service: str, description: str) -> StreamSpec:
    return StreamSpec(
        name=service.upper(),
        subjects=(subjects.service_events(service),),
        owner=service,
        description=description,
    )


STREAMS: tuple[StreamSpec, ...] = (
    _service_stream("identity", "Organizations, users, API keys, OAuth clients, signing keys"),
    _service_stream("devices", "Devices, groups, sites, tokens, certificates, presence, commands"),
    _service_stream("readings", "Readings service events (quarantine, annotations)"),
    _service_stream("alerting", "Alert rules, alerts and their transitions, channels"),
    _service_stream("exports", "Export jobs"),
    _service_stream("fleet", "Config artefacts, desired-state bindings, profiles, packs"),
    StreamSpec(
        name="EXPORT_JOBS",
        subjects=(subjects.work_all("exports"),),
        owner="exports",
        description="Export jobs to run: one message per job, fed from exports' outbox",
        retention="workqueue",
    ),
    # Announcements of new timeline entries (decision 96): tiny, kept a day; what the
    # gateway's /events/stream wakes on. The timeline itself stays in alerting's table.
    StreamSpec(
        name="TIMELINE",
        subjects=(subjects.TIMELINE_ALL,),
        owner="alerting",
        description="The organization's timeline advanced (its sequence), from alerting's outbox",
        max_age_seconds=24 * 3600,
        control_plane=False,
    ),
    StreamSpec(
        name="TELEMETRY",
        subjects=(subjects.TELEMETRY_ALL,),
        owner="readings",
        description="Device telemetry as devices publish it (docs/api.md, Device protocol)",
        max_age_seconds=7 * 24 * 3600,
        duplicate_window_seconds=120,
        control_plane=False,
    ),
    # What integrations read (issue 23, ADR 0097): every organization's events but
    # identity's, and telemetry, copied by nats-server from their streams with their
    # subjects. Integrations' durable consumers live here alone, filtered to their own
    # organization's subjects by identity, which creates them: no platform consumer is on
    # this stream for that permission to touch.
    StreamSpec(
        name="PUBLIC",
        subjects=(),
        owner="identity",
        description="Organizations' events and telemetry as integrations read them",
        sources=("DEVICES", "READINGS", "ALERTING", "EXPORTS", "FLEET", "TELEMETRY"),
        max_age_seconds=7 * 24 * 3600,
        control_plane=False,
    ),
    # nats-server's store of MQTT QoS 1/2 publishes (decision 82): the copy of a device's
    # reading that exists once its PUBACK is sent, which readings stores. Created by nats-server
    # on the first MQTT connection when missing, with exactly these settings.
    StreamSpec(
        name=subjects.MQTT_MESSAGES_STREAM,
        subjects=(subjects.MQTT_STORED_PREFIX + ">",),
        owner="readings",
        description="nats-server's MQTT QoS 1/2 messages, kept until every consumer has them",
        retention="interest",
        control_plane=False,
        written_by_broker=True,
    ),
)


def _suspensions(service: str) -> ConsumerSpec:
    """A service's record of which organizations are suspended (decision 76)."""
    return ConsumerSpec(
        stream="IDENTITY",
        name=f"{service}-organizations",
        owner=service,
        filter_subjects=tuple(
            subjects.event_filter("identity", name)
            for name in ("OrganizationSuspended", "OrganizationReinstated")
        ),
        description="Organizations suspended and reinstated (what they may no longer do)",
    )


CONSUMERS: tuple[ConsumerSpec, ...] = (
    ConsumerSpec(
        stream="IDENTITY",
        name="gateway-credentials",
        owner="gateway",
        durable=False,
        filter_subjects=(subjects.service_events("identity"),),
        description="Each gateway replica's credential cache (API keys, organizations)",
    ),
    ConsumerSpec(
        stream="TIMELINE",
        name="gateway-timeline",
        owner="gateway",
        durable=False,
        filter_subjects=(subjects.TIMELINE_ALL,),
        deliver_policy="new",
        description="Each gateway replica's wake-ups of /events/stream connections",
    ),
    ConsumerSpec(
        stream="TELEMETRY",
        name="readings-telemetry",
        owner="readings",
        filter_subjects=(subjects.TELEMETRY_ALL,),
        ack_wait_seconds=60,
        max_ack_pending=50_000,
        description="Readings ingest",
    ),
    ConsumerSpec(
        # MQTT QoS 1/2 telemetry as nats-server stored it before its PUBACK (decision 82):
        # its interest keeps each message in $MQTT_msgs until readings has stored it; the
        # copy TELEMETRY captured is skipped by readings-telemetry.
        stream=subjects.MQTT_MESSAGES_STREAM,
        name="readings-mqtt",
        owner="readings",
        filter_subjects=(subjects.MQTT_STORED_TELEMETRY,),
        ack_wait_seconds=60,
        max_ack_pending=50_000,
        deliver_policy="new",
        description="Readings ingest of MQTT QoS 1/2 telemetry, as acknowledged to devices",
    ),
    ConsumerSpec(
        stream="DEVICES",
        name="readings-devices",
        owner="readings",
        filter_subjects=(subjects.service_events("devices"),),
        description="Readings' local device registry",
    ),
    ConsumerSpec(
        stream="TELEMETRY",
        name="alerting-telemetry",
        owner="alerting",
        filter_subjects=(subjects.TELEMETRY_ALL,),
        ack_wait_seconds=60,
        max_ack_pending=50_000,
        deliver_policy="new",
        description="Streaming rule evaluation",
    ),
    ConsumerSpec(
        stream="DEVICES",
        name="alerting-devices",
        owner="alerting",
        filter_subjects=(subjects.service_events("devices"),),
        description="Alerting's local view of devices, groups and sites",
    ),
    ConsumerSpec(
        stream="FLEET",
        name="alerting-fleet",
        owner="alerting",
        filter_subjects=(subjects.event_filter("fleet", "DeviceConfigDrifted"),),
        description="The timeline's fleet entries: a device's configuration drifting",
    ),
    ConsumerSpec(
        stream="ALERTING",
        name="alerting-notifications",
        owner="alerting",
        filter_subjects=tuple(
            subjects.event_filter("alerting", name)
            for name in ("AlertOpened", "AlertAcknowledged", "AlertResolved")
        ),
        description="Notification deliveries: one per alert event and channel of its rule",
    ),
    ConsumerSpec(
        stream="EXPORT_JOBS",
        name="exports-jobs",
        owner="exports",
        filter_subjects=(subjects.work_all("exports"),),
        # A worker sends +WPI while it works; a killed worker's job is delivered again
        # after this. Attempts are counted (and bounded) in Postgres, not here.
        ack_wait_seconds=30,
        max_deliver=-1,
        max_ack_pending=1000,
        description="Export workers: explicit acks, in-progress acks while working",
    ),
    # The fleet's rollout (issue 21, ADR 0093): where each device sits, what each reports,
    # and the configuration changes that recompute effective desired states.
    ConsumerSpec(
        stream="DEVICES",
        name="fleet-devices",
        owner="fleet",
        filter_subjects=tuple(
            subjects.event_filter("devices", name)
            for name in ("DeviceRegistered", "DeviceUpdated", "DeviceDecommissioned")
        ),
        max_ack_pending=20_000,
        description="The fleet's view of devices: organization, site, group, device profile",
    ),
    ConsumerSpec(
        stream="DEVICES",
        name="fleet-reports",
        owner="fleet",
        filter_subjects=(subjects.event_filter("devices", "ReportedStateChanged"),),
        max_ack_pending=20_000,
        description="Devices' reported states, for the fleet's compliance counts",
    ),
    ConsumerSpec(
        stream="FLEET",
        name="fleet-recompute",
        owner="fleet",
        filter_subjects=(subjects.service_events("fleet"),),
        ack_wait_seconds=60,
        description="Artefact, binding and device profile changes: effective states recomputed",
    ),
    _suspensions("devices"),
    _suspensions("readings"),
    _suspensions("alerting"),
    ConsumerSpec(
        # The broker's auth callout learns integrations' users and password hashes (ADR 0097).
        stream="IDENTITY",
        name="devices-integrations",
        owner="devices",
        filter_subjects=tuple(
            subjects.event_filter("identity", name)
            for name in (
                "IntegrationCreated",
                "IntegrationCredentialRotated",
                "IntegrationRevoked",
            )
        ),
        description="Integrations' broker credentials (hashes), for the auth callout",
    ),
)


def streams_of(service: str) -> tuple[StreamSpec, ...]:
    return tuple(s for s in STREAMS if s.owner == service)


def consumers_of(service: str) -> tuple[ConsumerSpec, ...]:
    return tuple(c for c in CONSUMERS if c.owner == service)


def consumer(name: str) -> ConsumerSpec:
    for c in CONSUMERS:
        if c.name == name:
            return c
    raise KeyError(name)


def stream(name: str) -> StreamSpec:
    for s in STREAMS:
        if s.name == name:
            return s
    raise KeyError(name)
