"""``outpost_contracts.firmware``: wire tags, round trips, request bodies and the signed bytes."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID

import msgspec
import pytest

from outpost_contracts import firmware, schemas
from outpost_contracts.base import event_name, event_tag

pytestmark = pytest.mark.unit


def test_every_firmware_event_has_a_fleet_v1_tag_of_its_own() -> None:
    tags = [event_tag(t) for t in firmware.EVENT_TYPES]
    assert len(set(tags)) == len(tags)
    for event_type, tag in zip(firmware.EVENT_TYPES, tags, strict=True):
        assert event_name(tag) == ("fleet", event_type.__name__, 1)


def test_not_published_yet_so_not_in_the_schemas() -> None:
    # Joins schemas.MODULES with the service that publishes these events (module docstring).
    assert firmware not in schemas.MODULES


def test_a_rollout_event_round_trips_in_camel_case() -> None:
    event = firmware.FirmwareRolloutCreated(
        firmware_id=UUID(int=1),
        version="1.4.2",
        target=firmware.RolloutTarget(type=firmware.RolloutTargetType.GROUP, id=UUID(int=2)),
        phases=[firmware.Phase(percent=10, wait_seconds=600), firmware.Phase()],
        abort_criteria=firmware.AbortCriteria(failure_percent=5, min_executed=20),
        timeout_seconds=3600,
        maintenance_window=firmware.MaintenanceWindow(
            days=[firmware.Weekday.SAT], start="22:00", end="04:00", timezone="Europe/Paris"
        ),
    )
    wire = msgspec.json.encode(event)
    assert b'"abortCriteria":{"failurePercent":5' in wire
    assert b'"type":"fleet.FirmwareRolloutCreated.v1"' in wire
    assert msgspec.json.decode(wire, type=firmware.FirmwareRolloutCreated) == event


def test_the_create_bodies_refuse_what_the_api_does_not_take() -> None:
    body = {
        "name": "gw",
        "version": "1.4.2-rc.1+b7",
        "sizeBytes": 1024**3,
        "sha256": "a" * 64,
    }
    assert msgspec.json.decode(msgspec.json.encode(body), type=firmware.CreateFirmware).size_bytes
    for bad in (
        {"version": "v1.4.2"},
        {"version": "1.4.2\n"},
        {"sha256": "A" * 64},
        {"sizeBytes": 0},
        {"sizeBytes": firmware.MAX_IMAGE_BYTES + 1},
        {"extra": 1},
    ):
        with pytest.raises(msgspec.ValidationError):
            msgspec.json.decode(msgspec.json.encode(body | bad), type=firmware.CreateFirmware)
    rollout = {
        "firmwareId": str(UUID(int=1)),
        "target": {"type": "DEVICES", "deviceIds": [str(UUID(int=2))]},
        "abortCriteria": {"failurePercent": 10},
        "timeoutSeconds": 600,
    }
    decoded = msgspec.json.decode(msgspec.json.encode(rollout), type=firmware.CreateFirmwareRollout)
    assert decoded.phases == [firmware.Phase()] and decoded.retries.max_attempts == 1
    for bad in (
        {"phases": []},
        {"phases": [{"percent": 0}]},
        {"phases": [{"percent": 101}]},
        {"timeoutSeconds": 5},
        {"maintenanceWindow": {"days": ["MON"], "start": "24:00", "end": "01:00"}},
        {"retries": {"maxAttempts": 0}},
    ):
        with pytest.raises(msgspec.ValidationError):
            msgspec.json.decode(
                msgspec.json.encode(rollout | bad), type=firmware.CreateFirmwareRollout
            )


def test_the_signed_bytes_are_built_from_the_commands_fields_only() -> None:
    message = firmware.signed_message(sha256="ab" * 32, size_bytes=7, version="1.0.0")
    assert message == b"outpost.firmware.v1\n" + b"ab" * 32 + b"\n7\n1.0.0\n"


def test_views_encode_in_camel_case() -> None:
    view = firmware.FirmwareView(
        id=UUID(int=1),
        name="gw",
        version="1.0.0",
        status=firmware.FirmwareStatus.READY,
        sha256="a" * 64,
        size_bytes=3,
        created_at=datetime(2026, 12, 7, tzinfo=UTC),
        signature="c2ln",
        signing_key_id="fw-1",
    )
    assert b'"signingKeyId":"fw-1"' in msgspec.json.encode(view)


def test_the_reported_version_is_read_from_the_firmware_key() -> None:
    assert firmware.reported_version({"firmware": {"version": "1.4.2"}, "led": True}) == "1.4.2"
    for reported in ({}, {"firmware": "1.4.2"}, {"firmware": {"version": 3}}):
        assert firmware.reported_version(reported) is None


def test_the_command_and_its_progress_are_camel_case() -> None:
    command = firmware.FirmwareCommand(
        execution_id=UUID(int=1),
        version="1.4.2",
        url="https://x/firmware/1/download?sig=a",
        sha256="a" * 64,
        signature="c2ln",
        size_bytes=10,
    )
    assert b'"executionId"' in msgspec.json.encode(command)
    ack = msgspec.json.decode(
        b'{"executionId":"00000000-0000-0000-0000-000000000001","status":"DOWNLOADING",'
        b'"bytesDownloaded":5}',
        type=firmware.FirmwareProgress,
    )
    assert ack.status in firmware.DEVICE_PROGRESS and ack.bytes_downloaded == 5
