"""What a pack item's ``content`` is, per kind, and its one canonical form (ADR 0092).

An item's digest (``packs.digest``) is taken of its canonical content, so the content a
document brings and the content made from a resource now compare equal exactly when the
resource is as the pack made it. Canonical: decoded into the kind's struct (which checks it
as the API would) and encoded back without the fields left empty.

- SENSOR_PROFILE: ``POST /sensor-profiles``'s body;
- DEVICE_PROFILE: ``POST /device-profiles``'s body, with each sensor naming its sensor
  profile by its key in the pack (``sensors[].sensorProfile``) and the config artefact by its
  key (``configArtefact``), not by ids, which differ between organizations;
- CONFIG_ARTEFACT: ``{name, document, schema?}``, the artefact's latest version.

An authored pack's keys are its items' ids in the organization that authored it: stable
from one version of the pack to the next, unique, and meaningless elsewhere.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any
from uuid import UUID

import msgspec

from outpost_contracts import fleet as api
from outpost_contracts.errors import FieldError, ValidationFailed
from outpost_fleet.domain.artefacts import ConfigArtefact
from outpost_fleet.domain.packs import ItemKind
from outpost_fleet.domain.profiles import DeviceProfile, SensorProfile


class PackSensor(
    msgspec.Struct, kw_only=True, frozen=True, rename="camel", forbid_unknown_fields=True
):
    key: api.SensorKey
    sensor_profile: api.PackItemKey
    component: api.ProfileName | None = None


class DeviceProfileContent(
    msgspec.Struct, kw_only=True, frozen=True, rename="camel", forbid_unknown_fields=True
):
    name: api.ProfileName
    components: api.Components = msgspec.field(default_factory=list)
    sensors: list[PackSensor] = msgspec.field(default_factory=list)
    rule_templates: api.RuleTemplates = msgspec.field(default_factory=list)
    config_artefact: api.PackItemKey | None = None
    expected_interval_seconds: api.ExpectedInterval | None = None
    firmware_family: api.ShortText | None = None
    description: api.Description | None = None


class ArtefactContent(
    msgspec.Struct, kw_only=True, frozen=True, rename="camel", forbid_unknown_fields=True
):
    name: api.ProfileName
    document: dict[str, Any]
    schema: dict[str, Any] | None = None


CONTENT_TYPES: dict[ItemKind, type[Any]] = {
    ItemKind.SENSOR_PROFILE: api.CreateSensorProfile,
    ItemKind.DEVICE_PROFILE: DeviceProfileContent,
    ItemKind.CONFIG_ARTEFACT: ArtefactContent,
}


def _compact(value: Any) -> Any:
    """Builtins without the null fields (at every depth): absent and null read the same."""
    if isinstance(value, dict):
        return {k: _compact(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_compact(v) for v in value]
    return value


def encode(struct: Any) -> dict[str, Any]:
    if isinstance(struct, ArtefactContent):  # a document's nulls are its own
        found = {"name": struct.name, "document": struct.document}
        return found if struct.schema is None else {**found, "schema": struct.schema}
    encoded: dict[str, Any] = _compact(msgspec.to_builtins(struct))
    return encoded


def decode(kind: ItemKind, content: Any, field: str) -> Any:
    """The item's content as its kind's struct; a ``ValidationFailed`` naming ``field``."""
    content_type = CONTENT_TYPES.get(kind)
    if content_type is None:
        raise ValidationFailed(
            "the pack item cannot be installed",
            fields=[
                FieldError(
                    name=f"{field}.kind",
                    message="rule templates travel inside their device profile (ruleTemplates)",
                )
            ],
        )
    try:
        return msgspec.convert(content, content_type)
    except msgspec.ValidationError as exc:
        raise ValidationFailed(
            "the pack item is not valid", fields=[FieldError(name=field, message=str(exc))]
        ) from None


def canonical(kind: ItemKind, content: Any, field: str = "content") -> dict[str, Any]:
    return encode(decode(kind, content, field))


def sensor_profile_content(profile: SensorProfile) -> dict[str, Any]:
    return encode(
        api.CreateSensorProfile(
            name=profile.name,
            unit=profile.unit,
            value_type=profile.value_type,
            key=profile.key,
            min=profile.min,
            max=profile.max,
            precision=profile.precision,
            display_name=profile.display_name,
        )
    )


def device_profile_content(profile: DeviceProfile, key_of: Callable[[UUID], str]) -> dict[str, Any]:
    """``key_of``: the pack key of a sensor profile or artefact the profile names."""
    artefact = profile.config_artefact_id
    return encode(
        DeviceProfileContent(
            name=profile.name,
            components=[api.ProfileComponent(name=c.name, kind=c.kind) for c in profile.components],
            sensors=[
                PackSensor(
                    key=s.key, sensor_profile=key_of(s.sensor_profile_id), component=s.component
                )
                for s in profile.sensors
            ],
            rule_templates=list(profile.rule_templates),
            config_artefact=None if artefact is None else key_of(artefact),
            expected_interval_seconds=profile.expected_interval_seconds,
            firmware_family=profile.firmware_family,
            description=profile.description,
        )
    )


def artefact_content(artefact: ConfigArtefact) -> dict[str, Any]:
    latest = artefact.latest
    assert latest is not None, "a live artefact has a version"
    return encode(
        ArtefactContent(name=artefact.name, document=latest.document, schema=latest.schema)
    )


def references(content: DeviceProfileContent) -> list[tuple[ItemKind, str, str]]:
    """The pack items a device profile names: (kind, key, the field naming it)."""
    found = [
        (ItemKind.SENSOR_PROFILE, s.sensor_profile, f"sensors[{i}].sensorProfile")
        for i, s in enumerate(content.sensors)
    ]
    if content.config_artefact is not None:
        found.append((ItemKind.CONFIG_ARTEFACT, content.config_artefact, "configArtefact"))
    return found


def device_profile_spec(
    content: DeviceProfileContent, ids: Mapping[tuple[ItemKind, str], UUID]
) -> api.CreateDeviceProfile:
    """The device profile the content describes, its references turned into this
    organization's resources (``ids``: what the install holds, by kind and key)."""
    artefact = content.config_artefact
    return api.CreateDeviceProfile(
        name=content.name,
        components=list(content.components),
        sensors=[
            api.ProfileSensor(
                key=s.key,
                sensor_profile_id=ids[(ItemKind.SENSOR_PROFILE, s.sensor_profile)],
                component=s.component,
            )
            for s in content.sensors
        ],
        rule_templates=list(content.rule_templates),
        config_artefact_id=None if artefact is None else ids[(ItemKind.CONFIG_ARTEFACT, artefact)],
        expected_interval_seconds=content.expected_interval_seconds,
        firmware_family=content.firmware_family,
        description=content.description,
    )
